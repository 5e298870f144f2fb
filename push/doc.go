// Package push owns what the message center receives: the NSQ message
// schema, the deterministic push id, the Publisher that packs pushes into
// batch messages and MPUBs them to nsqd, and a reference Consumer that
// shows how to read the stream.
//
// One NSQ message is one Batch (see CONTRACT.md, "NSQ"):
//
//	{"batch_id":"…","emitted_at":"2026-11-23T09:59:00.012Z","pushes":[
//	  {"push_id":"…","user_id":42,"due_at":"2026-11-23T09:59:00.000Z","items":[
//	    {"template_id":7,"push_at":"2026-11-23T09:59:00.000Z","grab_start":"2026-11-23T10:00:00.000Z"}]}]}
//
// Invariants this package keeps:
//
//   - Times on the wire are UTC with exactly three fractional digits and a
//     `Z`; finer precision is cut, not rounded. DecodeBatch accepts nothing
//     else.
//   - A push's DueAt is the earliest PushAt of its items; Push.Validate,
//     the encoder and DecodeBatch all insist on it.
//   - ID is a pure function of the user and the set of (template, push
//     time) keys, so a push republished after a crash carries the same id
//     (DESIGN.md, R5). Its canonical form is documented on ID and must not
//     change without a new version prefix.
//   - No message exceeds PublisherConfig.MaxMessageBytes and no MPUB body
//     exceeds MaxBodyBytes (nsqd's --max-msg-size and --max-body-size);
//     a single push too big for a message is ErrTooLarge, never truncated.
//   - emitted_at is when the batch was encoded. Encode seals batches to
//     be sent later (PublishEncodedWhile, for work prepared ahead of due),
//     so it may precede due_at; lateness is arrival minus due_at.
//   - Publish returns nil only after nsqd accepted every batch; that is
//     where delivery guarantees end. Retries republish the same bytes
//     (same batch ids), so a repeat is harmless to a consumer that drops
//     push ids it has seen.
//   - The Consumer's memory of seen push ids is bounded (DedupCapacity,
//     oldest forgotten first); malformed messages are finished, never
//     requeued forever.
package push
