import type { GossipSub, Message, SubscriptionChangeData } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { LIMITS, presenceTopic } from '@rpib/protocol'
import type { Logger } from '../log.js'
import type { MarketIndex } from './market-index.js'
import { signPresence, verifyPresence } from './records.js'

/** Extra beats for peers that just joined come at most this often. */
const EARLY_BEAT_GAP_MS = 10_000

export interface PresenceStats {
  published: number
  accepted: number
  rejected: number
  ignored: number
}

export interface PresenceServiceOptions {
  pubsub: GossipSub
  networkId: string
  peerId: PeerId
  privateKey: PrivateKey
  index: MarketIndex
  log: Logger
  /** how often this node beats while it has listings to announce (ms) */
  intervalMs: number
  /** device ids to announce; the node beats only while this is non-empty (providers) */
  announced: () => readonly string[]
  /** this node's dialable addresses, announced in every beat */
  addresses?: () => readonly string[]
  /** a provider's signed addresses from a valid beat (the market adds them to the peer store) */
  onAddresses?: (provider: string, addrs: readonly string[]) => void
}

/**
 * Presence is not stored: providers publish a signed PresenceBeat on the network's gossipsub
 * topic every `intervalMs`, and every node records the last valid beat per provider in its index.
 * The topic validator rejects invalid beats, so gossipsub scoring penalises their senders.
 */
export class PresenceService {
  readonly topic: string
  private timer: NodeJS.Timeout | undefined
  private earlyBeat: NodeJS.Timeout | undefined
  private lastBeatAt = 0
  private seq = 0
  private running = false
  private readonly lastCreatedAt = new Map<string, number>()
  private readonly counters: PresenceStats = { published: 0, accepted: 0, rejected: 0, ignored: 0 }

  constructor(private readonly options: PresenceServiceOptions) {
    this.topic = presenceTopic(options.networkId)
  }

  start(): void {
    if (this.running) return
    this.running = true
    const { pubsub } = this.options
    pubsub.topicValidators.set(this.topic, this.validate)
    pubsub.subscribe(this.topic)
    pubsub.addEventListener('subscription-change', this.onSubscriptionChange)
    this.schedule(0)
  }

  /**
   * A peer joined the presence topic: beat soon rather than at the next interval, so a newcomer sees who
   * is online (and where to dial them) within seconds. At most one extra beat per EARLY_BEAT_GAP_MS.
   */
  private readonly onSubscriptionChange = (evt: CustomEvent<SubscriptionChangeData>): void => {
    if (!evt.detail.subscriptions.some((s) => s.topic === this.topic && s.subscribe)) return
    if (this.earlyBeat !== undefined || Date.now() - this.lastBeatAt < EARLY_BEAT_GAP_MS) return
    this.earlyBeat = setTimeout(() => {
      this.earlyBeat = undefined
      this.beat().catch((err: unknown) =>
        this.options.log('early presence beat failed: %s', (err as Error).message),
      )
    }, 1000)
    this.earlyBeat.unref()
  }

  stop(): void {
    if (!this.running) return
    this.running = false
    clearTimeout(this.timer)
    clearTimeout(this.earlyBeat)
    this.timer = undefined
    this.earlyBeat = undefined
    const { pubsub } = this.options
    pubsub.removeEventListener('subscription-change', this.onSubscriptionChange)
    pubsub.topicValidators.delete(this.topic)
    try {
      pubsub.unsubscribe(this.topic)
    } catch {
      // libp2p may already be stopping; nothing left to release
    }
  }

  stats(): PresenceStats {
    return { ...this.counters }
  }

  /** Publishes one beat now (also used right after a listing is published). */
  async beat(): Promise<void> {
    const devices = this.options.announced()
    if (!this.running || devices.length === 0) return
    const now = Date.now()
    this.lastBeatAt = now
    const addrs = (this.options.addresses?.() ?? []).slice(0, LIMITS.maxSshEndpoints)
    const { bytes } = await signPresence(
      {
        seq: this.seq++,
        listings: [...devices],
        ...(addrs.length > 0 ? { addrs } : {}),
      },
      this.options.privateKey,
      {
        now,
      },
    )
    // our own listings are online while we beat, whether or not anyone else is listening
    this.options.index.markSeen(this.options.peerId.toString(), now, devices)
    try {
      await this.options.pubsub.publish(this.topic, bytes)
      this.counters.published++
    } catch (err) {
      this.options.log('presence publish failed: %s', (err as Error).message)
    }
  }

  private schedule(delayMs: number): void {
    if (!this.running) return
    this.timer = setTimeout(() => {
      this.beat()
        .catch((err: unknown) => this.options.log.error('presence beat failed: %s', (err as Error).message))
        .finally(() => this.schedule(this.options.intervalMs))
    }, delayMs)
    this.timer.unref()
  }

  private readonly validate = async (_from: PeerId, msg: Message): Promise<TopicValidatorResult> => {
    const result = await this.check(msg)
    if (result === TopicValidatorResult.Reject) this.counters.rejected++
    if (result === TopicValidatorResult.Ignore) this.counters.ignored++
    return result
  }

  private async check(msg: Message): Promise<TopicValidatorResult> {
    // beats must travel in signed gossip messages from their own signer
    if (msg.type !== 'signed') return TopicValidatorResult.Reject
    const checked = await verifyPresence(msg.data)
    if (!checked.ok) {
      this.options.log('rejected presence beat from %p: %s', msg.from, checked.message)
      return TopicValidatorResult.Reject
    }
    const signer = checked.record.signer
    if (signer !== msg.from.toString()) return TopicValidatorResult.Reject
    const last = this.lastCreatedAt.get(signer)
    // an old beat seen again is not an offence (gossip may re-deliver), it just adds nothing
    if (last != null && checked.record.createdAt <= last) return TopicValidatorResult.Ignore
    this.lastCreatedAt.set(signer, checked.record.createdAt)
    // the receive time, not the signer's clock, decides freshness: a skewed clock cannot fake presence
    this.options.index.markSeen(signer, Date.now(), checked.record.body.listings)
    const addrs = checked.record.body.addrs
    if (addrs != null && addrs.length > 0) this.options.onAddresses?.(signer, addrs)
    this.counters.accepted++
    return TopicValidatorResult.Accept
  }
}
