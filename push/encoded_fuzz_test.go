package push

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzSplitEncoded: SplitEncoded never panics; what it accepts is exactly
// a sequence of length-prefixed, non-empty messages, which it gives back
// unchanged; anything else is ErrInvalid.
func FuzzSplitEncoded(f *testing.F) {
	p := newTestPublisher(f, PublisherConfig{MaxPushesPerBatch: 3})
	enc, err := p.Encode(variedPushes(7))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 9, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := SplitEncoded(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		var back []byte
		for _, m := range msgs {
			if len(m) == 0 {
				t.Fatal("an empty message was accepted")
			}
			back = binary.BigEndian.AppendUint32(back, uint32(len(m)))
			back = append(back, m...)
		}
		if !bytes.Equal(back, b) {
			t.Fatalf("split and joined again differs from the input")
		}
	})
}
