package coupon

import (
	"testing"

	"couponpush/internal/enginetest"
)

func TestMain(m *testing.M) { enginetest.MainNoLeaks(m) }

// newDSN returns a DSN to a fresh, empty MariaDB database of this test.
func newDSN(t testing.TB) string { return enginetest.MySQL(t) }

func ptr[T any](v T) *T { return &v }
