package client_test

import (
	"testing"

	"couponpush/internal/enginetest"
)

func TestMain(m *testing.M) { enginetest.Main(m) }
