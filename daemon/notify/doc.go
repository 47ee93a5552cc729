// Package notify tells a person about mirror syncs by posting them to a Discord webhook:
// one embed per event (started, succeeded, failed) with the trigger, upstream, duration,
// data moved, packages changed and, for a failure, the reason and rsync's last lines.
//
// Delivery is best effort and never the caller's problem. Notify only queues the event and
// returns; Run, in its own goroutine, posts them in order, waits out Discord's rate limits,
// retries server and network errors a few times with backoff, and otherwise logs a warning
// and moves on. A dead or misconfigured webhook costs a log line, never a stalled sync.
//
// The webhook URL is a credential (anyone holding it can post to the channel), so it never
// appears in a log line or an error: net/http's *url.Error, which quotes the URL, is unwrapped,
// and what remains is scrubbed of the URL and its token as a second line of defence.
//
// What it is not: a Discord client (it never reads, edits or deletes messages), a durable
// queue (events are dropped when the small in-memory queue is full and at shutdown; nothing
// is persisted or replayed), or the record of what happened — the daemon's log and store are.
// Other kinds of notification (mail, other chat services) would be sibling types here, not
// options of Discord.
package notify
