import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { CLI_PATH, runCli } from '../helpers/cli.js'
import { createDevchain, type Devchain } from '../../src/payments/devchain/server.js'

let devchain: Devchain
let tmp: string
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'rpib-paycli-'))
  devchain = createDevchain({ port: 0 })
  await devchain.start()
})
after(async () => {
  await devchain.stop()
  await rm(tmp, { recursive: true, force: true })
})

const PASS = { RPIB_WALLET_PASSPHRASE: 'cli test passphrase' }
async function rpib(home: string, args: string[], env: Record<string, string> = {}) {
  const r = await runCli(['--json', '--home', home, ...args], { RPIB_ESPLORA_URL: devchain.url, ...env })
  return { ...r, json: () => JSON.parse(r.stdout) as Record<string, unknown> }
}

test('wallet CLI: create, fund, balance, pay an invoice, history, PSBT export/import, invoice list', async () => {
  const alice = join(tmp, 'alice')
  const bob = join(tmp, 'bob')
  const [created, bobCreated] = await Promise.all([
    rpib(alice, ['wallet', 'create', '--network', 'regtest'], PASS),
    rpib(bob, ['wallet', 'create', '--words', '12'], PASS),
  ])
  assert.equal(created.code, 0, created.stderr + created.stdout)
  assert.equal((created.json().mnemonic as string).split(' ').length, 24)
  assert.equal((bobCreated.json().mnemonic as string).split(' ').length, 12)

  const [addrOut, inv] = await Promise.all([
    rpib(alice, ['wallet', 'address']),
    rpib(bob, ['invoice', 'create', '12345', '--label', 'cli']),
  ])
  const addr = addrOut.json().address as string
  assert.match(addr, /^bcrt1q/)
  assert.equal(inv.code, 0, inv.stdout)
  const invoice = inv.json() as { id: string; address: string; uri: string; status: string }
  assert.equal(invoice.uri, `bitcoin:${invoice.address}?amount=0.00012345&label=cli`)
  assert.equal(invoice.status, 'awaiting')
  const faucet = await rpib(alice, ['devchain', 'faucet', addr, '300000', '--mine'])
  assert.equal(faucet.code, 0, faucet.stdout)
  assert.deepEqual((await rpib(alice, ['wallet', 'balance'])).json(), {
    confirmedSats: 300_000,
    unconfirmedSats: 0,
    totalSats: 300_000,
  })

  const sent = await rpib(alice, ['wallet', 'send', invoice.address, '12345', '--fee-rate', '2'], PASS)
  assert.equal(sent.code, 0, sent.stdout + sent.stderr)
  await devchain.mine(1)
  const [shown, historyOut] = await Promise.all([
    rpib(bob, ['invoice', 'show', invoice.id.slice(0, 8)]),
    rpib(alice, ['wallet', 'history']),
  ])
  assert.equal(shown.json().status, 'confirmed')
  const history = JSON.parse(historyOut.stdout) as Array<{ txid: string; netSats: number }>
  assert.equal(history.length, 2)
  assert.ok(
    history.some(
      (h) => h.txid === sent.json().txid && h.netSats === -(12_345 + (sent.json().feeSats as number)),
    ),
  )

  const psbtFile = join(tmp, 'pay.psbt')
  const exported = await rpib(alice, [
    'wallet',
    'export-psbt',
    invoice.address,
    '20000',
    '--fee-rate',
    '1',
    '--out',
    psbtFile,
  ])
  assert.equal(exported.code, 0, exported.stdout)
  const imported = await rpib(alice, ['wallet', 'import-psbt', psbtFile], PASS)
  assert.equal(imported.code, 0, imported.stdout)
  assert.match(imported.json().txid as string, /^[0-9a-f]{64}$/)
  const listed = JSON.parse((await rpib(bob, ['invoice', 'list'])).stdout) as Array<{
    id: string
    status: string
    excessSats: number
  }>
  assert.deepEqual(
    listed.map((i) => [i.id, i.status, i.excessSats]),
    [[invoice.id, 'overpaid', 20_000]],
  )
})

test('wallet CLI errors: missing wallet, wrong network, one-line human errors; restore from a file', async () => {
  const home = join(tmp, 'errors')
  const mnemonicFile = join(tmp, 'words.txt')
  await writeFile(
    mnemonicFile,
    'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about\n',
  )
  const missing = await rpib(home, ['wallet', 'balance'])
  assert.equal((missing.json().error as { code: string }).code, 'ERR_WALLET_MISSING')
  const fromFile = await rpib(home, ['wallet', 'restore', '--mnemonic-file', mnemonicFile], PASS)
  assert.equal(missing.code, 1)
  assert.equal(fromFile.code, 0, fromFile.stdout)
  assert.match(fromFile.json().accountPub as string, /^vpub/)
  const [wrongNet, human] = await Promise.all([
    rpib(home, ['wallet', 'send', 'bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu', '1000'], PASS),
    runCli(['--home', home, 'wallet', 'send', 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080', '1.5'], {
      ...PASS,
      RPIB_ESPLORA_URL: devchain.url,
    }),
  ])
  assert.equal((wrongNet.json().error as { code: string }).code, 'ERR_ADDRESS_NETWORK')
  assert.equal(human.code, 1)
  assert.match(human.stderr, /^rpib: amount must be a whole number of satoshis \(got "1\.5"\)\n$/)
})

test('rpib devchain start serves the Esplora API until SIGTERM', async () => {
  const child = spawn(
    process.execPath,
    [CLI_PATH, '--json', 'devchain', 'start', '--port', '0', '--memory'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  try {
    // --json output is pretty-printed: read lines until they form one JSON document
    const url = await new Promise<string | undefined>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout })
      let text = ''
      rl.on('line', (line) => {
        text += line
        try {
          resolve((JSON.parse(text) as { url?: string }).url)
          rl.close()
        } catch {
          // not complete yet
        }
      })
      child.once('exit', (code) => reject(new Error(`devchain exited early with ${code}`)))
    })
    assert.match(url ?? '', /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(await (await fetch(`${url}/blocks/tip/height`)).text(), '0')
  } finally {
    const exited = new Promise((r) => child.once('exit', r))
    child.kill('SIGTERM')
    await exited
  }
})
