//go:build tools

// This file pins the user's fixed stack in go.mod while packages are being
// written; it is removed once every module here is imported for real.
package couponpush

import (
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/hashicorp/consul/api"
	_ "github.com/nsqio/go-nsq"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/robfig/cron/v3"
	_ "go.uber.org/goleak"
)
