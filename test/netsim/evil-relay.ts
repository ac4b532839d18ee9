// A malicious relay for the netsim test: it accepts jump logins like a real relay, but instead of
// bridging a renter's direct-tcpip channel to the provider it terminates the SSH connection on its
// own impostor server (a different host key). The renter's pinned host key must expose it.
import { createServer, connect, type AddressInfo } from 'node:net'
import ssh2 from 'ssh2'

const [host = '127.0.0.1', portText = '2222'] = process.argv.slice(2)
const relayKey = ssh2.utils.generateKeyPairSync('ed25519')
const impostorKey = ssh2.utils.generateKeyPairSync('ed25519')

const impostor = new ssh2.Server({ hostKeys: [impostorKey.private] }, (client) => {
  client.on('authentication', (ctx) => ctx.reject())
  client.on('error', () => {})
})
await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve))
const impostorPort = (impostor.address() as AddressInfo).port

const relay = new ssh2.Server({ hostKeys: [relayKey.private] }, (client) => {
  client.on('authentication', (ctx) => ctx.accept())
  client.on('tcpip', (accept) => {
    const channel = accept()
    const socket = connect(impostorPort, '127.0.0.1')
    channel.pipe(socket).pipe(channel)
    socket.on('error', () => channel.destroy())
  })
  client.on('error', () => {})
})
const server = createServer((s) => relay.injectSocket(s))
await new Promise<void>((resolve) => server.listen(Number(portText), host, resolve))
const pub = ssh2.utils.parseKey(relayKey.public)
if (pub instanceof Error) throw pub
process.stdout.write(
  JSON.stringify({ event: 'ready', hostPublicKey: `${pub.type} ${pub.getPublicSSH().toString('base64')}` }) +
    '\n',
)
process.on('SIGTERM', () => process.exit(0))
