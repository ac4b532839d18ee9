/**
 * The one interface every chain backend implements (Bitcoin Core JSON-RPC, Esplora REST, and the
 * devchain through its Esplora-compatible API). Amounts are integer satoshis; heights are block heights.
 */
export interface TxStatus {
  confirmed: boolean
  blockHeight?: number
  blockHash?: string
  /** block timestamp, unix seconds */
  blockTime?: number
}

export interface ChainTxInput {
  txid: string
  vout: number
  /** the spent output's address and value, when the backend knows them */
  address?: string
  valueSats?: number
  sequence: number
}

export interface ChainTxOutput {
  vout: number
  scriptHex: string
  /** undefined for non-standard output scripts */
  address?: string
  valueSats: number
}

export interface ChainTx {
  txid: string
  inputs: ChainTxInput[]
  outputs: ChainTxOutput[]
  /** fee in satoshis, when the backend knows the spent values */
  feeSats?: number
  status: TxStatus
}

export interface ChainUtxo {
  txid: string
  vout: number
  valueSats: number
  status: TxStatus
}

export interface Outspend {
  spent: boolean
  /** the spending transaction, when the backend can tell */
  txid?: string
}

export interface ChainBackend {
  readonly kind: 'esplora' | 'core-rpc'
  tipHeight(signal?: AbortSignal): Promise<number>
  tipHash(signal?: AbortSignal): Promise<string>
  /**
   * Makes the backend follow these addresses. Esplora indexes every address already (no-op);
   * Bitcoin Core imports them as watch-only descriptors.
   */
  watchAddresses(addresses: string[], signal?: AbortSignal): Promise<void>
  /** Transactions touching an address, in the mempool and confirmed (newest first). */
  addressTransactions(address: string, signal?: AbortSignal): Promise<ChainTx[]>
  /** Unspent outputs of an address, including unconfirmed ones. */
  addressUtxos(address: string, signal?: AbortSignal): Promise<ChainUtxo[]>
  /** A transaction, or undefined when the backend does not know it (never seen, or evicted). */
  transaction(txid: string, signal?: AbortSignal): Promise<ChainTx | undefined>
  transactionHex(txid: string, signal?: AbortSignal): Promise<string | undefined>
  outspend(txid: string, vout: number, signal?: AbortSignal): Promise<Outspend>
  /** Fee rate in sat/vB for confirmation within `targetBlocks`. */
  feeRate(targetBlocks: number, signal?: AbortSignal): Promise<number>
  /** Broadcasts a raw transaction; returns its txid or throws ERR_TX_REJECTED with the reason. */
  broadcast(txHex: string, signal?: AbortSignal): Promise<string>
}

/** Confirmations of a transaction at a given tip (0 while in the mempool). */
export function confirmations(status: TxStatus, tipHeight: number): number {
  if (!status.confirmed || status.blockHeight == null) return 0
  return Math.max(0, tipHeight - status.blockHeight + 1)
}
