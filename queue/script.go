package queue

import (
	"embed"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/*.lua
var luaFiles embed.FS

// load builds a script from the shared prelude and the named file.
func load(name string) *redis.Script {
	prelude, err := luaFiles.ReadFile("lua/prelude.lua")
	if err != nil {
		panic(err)
	}
	body, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic(err)
	}
	return redis.NewScript(string(prelude) + "\n" + string(body))
}

var (
	addScript      = load("add")
	cancelScript   = load("cancel")
	popScript      = load("pop")
	ackScript      = load("ack")
	recoverScript  = load("recover")
	forgetScript   = load("forget")
	leaseScript    = load("lease")
	moveOutScript  = load("move_out")
	moveInScript   = load("move_in")
	moveDoneScript = load("move_done")
	deadScript     = load("dead")
	replayScript   = load("replay")
	beginScript    = load("begin")
	sealScript     = load("seal")
)
