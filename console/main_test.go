package console

import (
	"testing"

	"couponpush/internal/enginetest"
)

func TestMain(m *testing.M) { enginetest.MainNoLeaks(m) }
