// Drives onair's realtime endpoint with the official clients; prints one JSON object of results.
// Env: ONAIR_URL, ANON_KEY, SELLER_TOKEN, VIEWER_TOKEN, STREAM_X, STREAM_Y, BUYER_TOKEN_SHORT
import { createClient } from '@supabase/supabase-js'
import { RealtimeClient } from '@supabase/realtime-js'
import WebSocket from 'ws'

const env = process.env
const url = env.ONAIR_URL
const results = {}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
async function until(check, ms = 5000) {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) return false
    await sleep(20)
  }
  return true
}
function subscribe(channel) {
  return new Promise((resolve) => {
    const states = []
    channel.subscribe((status, err) => {
      states.push([status, err ? String(err.message || err) : null])
      if (status !== 'SUBSCRIBED' || states.length === 1) resolve(states)
    })
  })
}

// 1. supabase-js (vsn 2.0.0 by default): subscribe, binary broadcast with self + ack
const sb = createClient(url, env.ANON_KEY, { realtime: { transport: WebSocket } })
const rt = new RealtimeClient(`${url.replace('http', 'ws')}/realtime/v1`, { params: { apikey: env.ANON_KEY }, transport: WebSocket })
const v1 = new RealtimeClient(`${url.replace('http', 'ws')}/realtime/v1`, { params: { apikey: env.ANON_KEY }, transport: WebSocket, vsn: '1.0.0' })
const gotSelf = [], gotOther = [], gotV1 = []
const chA = sb.channel('room-js', { config: { broadcast: { self: true, ack: true }, presence: { key: 'alice' } } })
chA.on('broadcast', { event: 'cursor' }, (m) => gotSelf.push(m))
const syncs = []
chA.on('presence', { event: 'sync' }, () => syncs.push(Object.keys(chA.presenceState()).sort()))
const chB = rt.channel('room-js', { config: { presence: { key: 'bob' } } })
chB.on('broadcast', { event: 'cursor' }, (m) => gotOther.push(m))
const chC = v1.channel('room-js')
chC.on('broadcast', { event: '*' }, (m) => gotV1.push(m))
results.subscribe_supabase_js = (await subscribe(chA))[0][0]
results.subscribe_realtime_js = (await subscribe(chB))[0][0]
results.subscribe_v1 = (await subscribe(chC))[0][0]
results.ack = await chA.send({ type: 'broadcast', event: 'cursor', payload: { from: 'js', n: 1 } })
await until(() => gotSelf.length && gotOther.length && gotV1.length)
results.self_received = gotSelf.map((m) => m.payload)
results.other_received = gotOther.map((m) => m.payload)
results.v1_received = gotV1.map((m) => m.payload)
await v1.channel('room-js').send({ type: 'broadcast', event: 'cursor', payload: { from: 'v1' } })
await until(() => gotOther.length === 2)
results.other_received_from_v1 = gotOther.slice(1).map((m) => m.payload)

// 2. presence: track on B, A sees it; B leaves, A sees it go
results.track = await chB.track({ name: 'bob' })
results.presence_join = await until(() => syncs.length && syncs[syncs.length - 1].includes('bob'))
rt.disconnect()
results.presence_leave = await until(() => syncs.length && !syncs[syncs.length - 1].includes('bob'))

// 3. postgres_changes with a stream filter (seller may read stream_viewers of their stream)
// third-party auth: supabase-js asks `accessToken` for the user JWT (on join, heartbeats, refresh)
let sellerToken = env.SELLER_TOKEN
const seller = createClient(url, env.ANON_KEY, { accessToken: async () => sellerToken, realtime: { transport: WebSocket } })
await seller.realtime.setAuth()  // otherwise the first join can race the callback and go out without a token
const changes = [], counts = [], sellerSaw = [], sellerNamed = []
const chS = seller.channel(`stream:${env.STREAM_X}`)
  .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'stream_viewers', filter: `stream_id=eq.${env.STREAM_X}` }, (p) => changes.push(p))
  .on('broadcast', { event: 'viewer_count' }, (m) => counts.push(m.payload.viewer_count))
  .on('broadcast', { event: '*' }, (m) => sellerSaw.push(m.event))
for (const event of ['stream_state', 'token_renew', 'viewer_count', 'webrtc:signal', 'seller:state', 'chat_sanction']) {
  chS.on('broadcast', { event }, (m) => sellerNamed.push([event, m.event, m.payload]))
}
results.subscribe_changes = (await subscribe(chS))[0][0]
for (const stream of [env.STREAM_Y, env.STREAM_X]) {
  const r = await fetch(`${url}/api/v1/streams/${stream}/viewers`, { method: 'POST', headers: { Authorization: `Bearer ${env.VIEWER_TOKEN}` } })
  results[`viewer_join_${stream === env.STREAM_X ? 'x' : 'y'}`] = r.status
}
await until(() => changes.length && counts.length)
await sleep(300)
results.changes = changes.map((c) => ({ eventType: c.eventType, table: c.table, stream_id: c.new.stream_id, user_id: c.new.user_id }))
results.viewer_counts = counts

// 4. token refresh keeps the channel; 5. private channel refused to the anon key
sellerToken = env.SELLER_TOKEN_2
await seller.realtime.setAuth()
await sleep(300)
results.after_refresh = chS.state
const priv = sb.channel(`stream:${env.STREAM_X}`, { config: { private: true } })
const privStates = await subscribe(priv)
results.private_anon = privStates[0]
priv.unsubscribe()

// 6. a buyer cannot send seller-only events
const buyer = createClient(url, env.ANON_KEY, { accessToken: async () => env.VIEWER_TOKEN, realtime: { transport: WebSocket } })
await buyer.realtime.setAuth()
const chBuyer = buyer.channel(`stream:${env.STREAM_X}`, { config: { broadcast: { ack: true } } })
results.subscribe_buyer = (await subscribe(chBuyer))[0][0]
sellerSaw.length = 0
results.buyer_sends = [
  await chBuyer.send({ type: 'broadcast', event: 'stream_state', payload: { status: 'ended' } }),
  await chBuyer.send({ type: 'broadcast', event: 'reaction', payload: { e: '+1' } }),
]
// 7. ...nor in another spelling that realtime-js would match onto the real listener
// (it compares toLocaleLowerCase of both names)
results.buyer_forged = []
for (const event of ['STREAM_STATE', 'Stream_State', 'TOKEN_RENEW', 'WEBRTC:signal', 'Seller:state', 'ſtream_state', 'ＳＴＲＥＡＭ_ＳＴＡＴＥ', 'Chat_Sanction']) {
  results.buyer_forged.push(await chBuyer.send({ type: 'broadcast', event, payload: { forged: event } }))
}
await chBuyer.send({ type: 'broadcast', event: 'reaction', payload: { last: true } })
await until(() => sellerSaw.length >= 2)
await sleep(500)
results.seller_saw = sellerSaw
results.seller_named_forged = sellerNamed.filter(([, , p]) => p && typeof p === 'object' && 'forged' in p)

// 8. the end of a stream (issue 11 §5): final state, then a `system` ok + phx_close → CLOSED, no rejoin
const ender = createClient(url, env.ANON_KEY, { accessToken: async () => env.VIEWER_TOKEN, realtime: { transport: WebSocket } })
await ender.realtime.setAuth()
const chEnd = ender.channel(`stream:${env.STREAM_Y}`)
const endSeen = []
chEnd.on('broadcast', { event: 'stream_state' }, (m) => endSeen.push(['state', m.payload?.stream?.status]))
chEnd.on('system', {}, (p) => endSeen.push(['system', p?.status, p?.message]))
const endStates = []
await new Promise((resolve) => chEnd.subscribe((status) => { endStates.push(status); if (status === 'SUBSCRIBED') resolve() }))
const ended = await fetch(`${url}/api/v1/streams/${env.STREAM_Y}/end`, { method: 'POST', headers: { Authorization: `Bearer ${env.SELLER_TOKEN}` } })
results.end_status = ended.status
await until(() => endStates.includes('CLOSED'), 10000)
await sleep(2500) // longer than the first rejoin delays
results.end_seen = endSeen
results.end_states = endStates
results.end_channel_state = chEnd.state

await sb.removeAllChannels(); await seller.removeAllChannels(); await buyer.removeAllChannels(); await ender.removeAllChannels()
v1.disconnect()
console.log(JSON.stringify(results))
process.exit(0)
