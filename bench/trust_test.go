package bench

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"couponpush/internal/enginetest"
)

// TestRunTrustSmoke runs the trust bench briefly on real engines: both
// loads, both orders of the modes, a profile a round, and its checks (rows
// counted in MySQL, no 429) pass. Its figures mean nothing at this size.
func TestRunTrustSmoke(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "p")
	cfg := TrustConfig{
		RedisAddr: enginetest.RedisAddr(t), MySQLDSN: enginetest.MySQL(t), ConsulAddr: enginetest.Consul(t),
		Clients: 4, For: 200 * time.Millisecond, Rounds: 2, CPUProfile: prefix,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := RunTrust(ctx, cfg, &out); err != nil {
		t.Fatalf("RunTrust: %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), "median checked/unchecked"); n != 2 {
		t.Errorf("%d median lines, want one a load:\n%s", n, out.String())
	}
	files, err := filepath.Glob(prefix + ".*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 8 { // 2 modes × 2 loads × 2 rounds
		t.Errorf("profiles %v, want 8", files)
	}
	for _, f := range []string{"checked.claim.1", "unchecked.claim.2", "checked.PUT.2", "unchecked.PUT.1"} {
		if !strings.Contains(strings.Join(files, " "), prefix+"."+f) {
			t.Errorf("no profile %s.%s among %v", prefix, f, files)
		}
	}
}
