import QRCode from 'qrcode'
import { satsToBtcString } from './amounts.js'

/** A BIP21 payment URI: bitcoin:<address>?amount=<BTC>&label=…&message=… */
export function bip21Uri(
  address: string,
  amountSats: number,
  opts: { label?: string; message?: string } = {},
): string {
  const params = new URLSearchParams()
  params.set('amount', satsToBtcString(amountSats))
  if (opts.label != null) params.set('label', opts.label)
  if (opts.message != null) params.set('message', opts.message)
  // URLSearchParams encodes spaces as "+", which BIP21 does not define; use %20
  return `bitcoin:${address}?${params.toString().replace(/\+/g, '%20')}`
}

/** The QR code of a URI as an SVG document (for the UI). */
export function qrSvg(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 })
}

/** The QR code rendered with Unicode half blocks (for the terminal). */
export function qrTerminal(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'terminal', small: true, errorCorrectionLevel: 'L' })
}
