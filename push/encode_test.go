package push

import (
	"testing"
	"time"
)

func TestPushLen(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 9, 59, 0, 0, time.UTC)
	tests := []struct {
		name string
		push Push
	}{
		{"one item", NewPush(42, []Item{{TemplateID: 7, PushAt: at, GrabStart: at}})},
		{"big numbers", NewPush(1<<62, []Item{{TemplateID: 1<<63 - 1, PushAt: at, GrabStart: at}, {TemplateID: 10, PushAt: at, GrabStart: at}})},
		{"short id", Push{ID: "p", UserID: 9, DueAt: at, Items: []Item{{TemplateID: 99, PushAt: at, GrabStart: at}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var e encoder
			if got, want := pushLen(&tt.push), len(e.push(nil, &tt.push))+1; got != want { // +1: the comma
				t.Fatalf("pushLen = %d, encoded %d (+1 comma)", got, want)
			}
		})
	}
	var e encoder
	if got := len(batchTail(e.batchHead(nil, newBatchID(), at))); got != batchEnvelopeLen {
		t.Fatalf("batchEnvelopeLen = %d, encoded %d", batchEnvelopeLen, got)
	}
}
