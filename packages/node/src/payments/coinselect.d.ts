// coinselect (bitcoinjs) ships no types; this declares the part the wallet uses.
declare module 'coinselect' {
  interface CoinSelectInput {
    value: number
    /** only `.length` is read: the input's script bytes beyond the 41-byte base */
    script?: { length: number }
  }
  interface CoinSelectOutput {
    address?: string
    value?: number
    script?: { length: number }
  }
  interface CoinSelectResult<I, O> {
    inputs?: I[]
    outputs?: Array<O & { value: number }>
    fee: number
  }
  export default function coinSelect<I extends CoinSelectInput, O extends CoinSelectOutput>(
    utxos: I[],
    outputs: O[],
    feeRate: number,
  ): CoinSelectResult<I, O>
}
