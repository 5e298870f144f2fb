package cluster

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

func TestParseQueueCount(t *testing.T) {
	leakCheck(t)
	tests := []struct {
		in   string
		want int // 0 means an error
	}{
		{"1", 1},
		{"16", 16},
		{" 16\n", 16},
		{"\t007 ", 7},
		{"65536", 65536},
		{"65537", 0},
		{"99999999999999999999999", 0},
		{"0", 0},
		{"-3", 0},
		{"+3", 0},
		{"abc", 0},
		{"3.0", 0},
		{"1e3", 0},
		{"1 2", 0},
		{"", 0},
		{"   ", 0},
		{"0x10", 0},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			got, err := ParseQueueCount([]byte(tt.in))
			if tt.want == 0 {
				if err == nil || !errors.Is(err, ErrBadQueueCount) {
					t.Errorf("ParseQueueCount(%q) = %d, %v; want ErrBadQueueCount", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseQueueCount(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzParseQueueCount(f *testing.F) {
	for _, s := range []string{"1", "16", " 16\n", "0", "-3", "abc", "65536", "65537", "00000000000000000000001", "\u00a012"} {
		f.Add([]byte(s))
	}
	digits := regexp.MustCompile(`^[0-9]+$`)
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseQueueCount(b)
		// Reference: trim, digits only, then range.
		s := strings.TrimSpace(string(b))
		ref, refErr := strconv.ParseUint(s, 10, 64)
		wantOK := digits.MatchString(s) && refErr == nil && ref >= 1 && ref <= MaxQueueCount
		if wantOK != (err == nil) {
			t.Fatalf("ParseQueueCount(%q) = %d, %v; reference ok=%v", b, n, err, wantOK)
		}
		if err == nil && uint64(n) != ref {
			t.Fatalf("ParseQueueCount(%q) = %d, want %d", b, n, ref)
		}
		if err != nil && !errors.Is(err, ErrBadQueueCount) {
			t.Fatalf("error %v does not wrap ErrBadQueueCount", err)
		}
	})
}

func TestQueueCountSetGetCAS(t *testing.T) {
	parallel(t)
	c, _ := newClient(t, "")
	ctx := testCtx(t)

	if n, idx, found, err := c.QueueCount(ctx); err != nil || found || n != 0 || idx != 0 {
		t.Fatalf("QueueCount on absent key = %d, %d, %v, %v; want not found", n, idx, found, err)
	}
	if ok, err := c.SetQueueCount(ctx, 5, 0); err != nil || !ok {
		t.Fatalf("SetQueueCount(5, cas 0) on absent key = %v, %v", ok, err)
	}
	if ok, err := c.SetQueueCount(ctx, 6, 0); err != nil || ok {
		t.Fatalf("SetQueueCount(6, cas 0) on present key = %v, %v; want a CAS conflict", ok, err)
	}
	n, idx, found, err := c.QueueCount(ctx)
	if err != nil || !found || n != 5 || idx == 0 {
		t.Fatalf("QueueCount = %d, %d, %v, %v; want 5", n, idx, found, err)
	}
	if ok, err := c.SetQueueCount(ctx, 7, idx); err != nil || !ok {
		t.Fatalf("SetQueueCount(7, cas %d) = %v, %v", idx, ok, err)
	}
	if ok, err := c.SetQueueCount(ctx, 8, idx); err != nil || ok {
		t.Fatalf("SetQueueCount(8, stale cas %d) = %v, %v; want a CAS conflict", idx, ok, err)
	}
	if n, _, _, _ := c.QueueCount(ctx); n != 7 {
		t.Fatalf("QueueCount = %d after the conflict, want 7", n)
	}
	for _, bad := range []int{0, -1, MaxQueueCount + 1} {
		if _, err := c.SetQueueCount(ctx, bad, 0); !errors.Is(err, ErrBadQueueCount) {
			t.Errorf("SetQueueCount(%d) = %v, want ErrBadQueueCount", bad, err)
		}
	}

	// A bad value written by someone else: reported, with the index to fix it.
	if _, err := c.api.KV().Put(&api.KVPair{Key: c.QueueCountKey(), Value: []byte("abc")}, nil); err != nil {
		t.Fatal(err)
	}
	_, idx, found, err = c.QueueCount(ctx)
	if !errors.Is(err, ErrBadQueueCount) || !found || idx == 0 {
		t.Fatalf("QueueCount on bad value = idx %d, found %v, err %v; want ErrBadQueueCount with an index", idx, found, err)
	}
	if ok, err := c.SetQueueCount(ctx, 3, idx); err != nil || !ok {
		t.Fatalf("fixing the bad value with CAS = %v, %v", ok, err)
	}
}

func TestQueueCountConsulDown(t *testing.T) {
	parallel(t)
	c, _ := newClient(t, deadAddr(t))
	ctx := testCtx(t)
	if _, _, _, err := c.QueueCount(ctx); err == nil {
		t.Error("QueueCount with Consul down succeeded")
	}
	if _, err := c.SetQueueCount(ctx, 4, 0); err == nil {
		t.Error("SetQueueCount with Consul down succeeded")
	}
	if err := c.Ping(ctx); err == nil {
		t.Error("Ping with Consul down succeeded")
	}
}

func TestKeys(t *testing.T) {
	parallel(t)
	for _, tt := range []struct{ prefix, want string }{
		{"", "couponpush/queues/count"},
		{"/a/b/", "a/b/queues/count"},
		{"run1", "run1/queues/count"},
	} {
		c, err := New(Config{Prefix: tt.prefix})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.QueueCountKey(); got != tt.want {
			t.Errorf("prefix %q: key %q, want %q", tt.prefix, got, tt.want)
		}
		c.Close()
	}
}
