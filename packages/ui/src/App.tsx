const views = ['Marketplace', 'Rentals', 'Owned Devices', 'Wallet', 'Network'] as const

/** Shell of the browser UI; each view becomes a client of the daemon's local API. */
export function App() {
  return (
    <main>
      <h1>RPi Broker</h1>
      <nav>
        <ul>
          {views.map((v) => (
            <li key={v}>{v}</li>
          ))}
        </ul>
      </nav>
      <p>
        The views arrive with the local API. Until then, use the <code>rpib</code> command line.
      </p>
    </main>
  )
}
