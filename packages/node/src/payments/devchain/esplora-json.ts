import { script as bscript } from 'bitcoinjs-lib'
import { scriptToAddress } from '../networks.js'
import type { BlockRecord, DevChain, StoredTx } from './chain.js'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** Esplora's `scriptpubkey_type` names. */
function scriptType(s: Uint8Array): string {
  if (s.length === 22 && s[0] === 0x00 && s[1] === 0x14) return 'v0_p2wpkh'
  if (s.length === 34 && s[0] === 0x00 && s[1] === 0x20) return 'v0_p2wsh'
  if (s.length === 34 && s[0] === 0x51 && s[1] === 0x20) return 'v1_p2tr'
  if (s.length === 25 && s[0] === 0x76 && s[1] === 0xa9) return 'p2pkh'
  if (s.length === 23 && s[0] === 0xa9) return 'p2sh'
  if (s[0] === 0x6a) return 'op_return'
  return 'unknown'
}

function outputJson(script: Uint8Array, value: bigint) {
  const address = scriptToAddress(script, 'regtest')
  return {
    scriptpubkey: hex(script),
    scriptpubkey_asm: bscript.toASM(script),
    scriptpubkey_type: scriptType(script),
    ...(address != null ? { scriptpubkey_address: address } : {}),
    value: Number(value),
  }
}

export function statusJson(block: BlockRecord | undefined) {
  return block == null
    ? { confirmed: false }
    : { confirmed: true, block_height: block.height, block_hash: block.hash, block_time: block.time }
}

/** A transaction in Esplora's `/tx/:txid` JSON shape. */
export function txJson(chain: DevChain, t: StoredTx) {
  const state = chain.state(t.txid)
  const tx = t.tx
  return {
    txid: t.txid,
    version: tx.version,
    locktime: tx.locktime,
    vin: tx.ins.map((input, i) => ({
      txid: t.coinbase ? '0'.repeat(64) : hex(Uint8Array.from(input.hash).reverse()),
      vout: input.index,
      prevout: t.coinbase ? null : outputJson(t.prevouts[i]!.script, t.prevouts[i]!.value),
      scriptsig: hex(input.script),
      scriptsig_asm: t.coinbase ? '' : bscript.toASM(input.script),
      witness: input.witness.map(hex),
      is_coinbase: t.coinbase,
      sequence: input.sequence,
    })),
    vout: tx.outs.map((o) => outputJson(o.script, o.value)),
    size: tx.byteLength(),
    weight: tx.weight(),
    fee: Number(t.fee),
    status: statusJson(state.where === 'block' ? state.block : undefined),
  }
}
