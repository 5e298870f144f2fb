package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"couponpush/queue"
)

func TestDeadlettersListAndReplay(t *testing.T) {
	parallel(t)
	e := newEngines(t)
	ctx := t.Context()
	if _, err := e.queue.InitLayout(ctx, 1); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	addUsers(t, e.queue.NewRouter(func() int { return 1 }), 3, at)
	l, ok, err := e.queue.Acquire(ctx, 0, time.Minute)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	p, err := e.queue.Pop(ctx, l, queue.PopOptions{MergeWindow: time.Second, MaxUsers: 10, Deadline: time.Minute})
	if err != nil || len(p.Chunk.Pushes) != 3 {
		t.Fatalf("pop = %+v, %v", p, err)
	}
	if _, ok, err := e.queue.DeadLetter(ctx, l, p.Chunk, []queue.Unsent{{Index: 0, Reason: "E_BAD_MESSAGE too big"}, {Index: 2, Reason: "template 3: gone"}}); err != nil || !ok {
		t.Fatalf("dead letter: %v %v", ok, err)
	}
	first, third := pushID(p.Chunk.Pushes[0]), pushID(p.Chunk.Pushes[2])

	r := runCLI(t, append(e.flags(), "deadletters")...)
	r.want(t, 0, "QUEUE", "")
	for _, s := range []string{"PUSH_ID", "REASON", first, third, "E_BAD_MESSAGE too big", "template 3: gone", "total  2"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("deadletters lacks %q:\n%s", s, r.stdout)
		}
	}
	r = runCLI(t, append(e.flags(), "deadletters", "-json")...)
	var out deadlettersJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
		t.Fatalf("deadletters -json: %v, %+v", err, r)
	}
	if out.Total != 2 || len(out.DeadLetters) != 2 || out.DeadLetters[0].Queue != 0 || len(out.DeadLetters[0].Items) != 1 ||
		out.DeadLetters[0].Items[0].TemplateID != 3 || out.DeadLetters[0].At == "" {
		t.Fatalf("deadletters -json = %+v", out)
	}

	r = runCLI(t, append(e.flags(), "deadletters", "replay", first, "0123456789abcdef0123456789abcdef")...)
	r.want(t, 1, "", "not in the dead letters: 0123456789abcdef0123456789abcdef (nothing replayed)")
	r = runCLI(t, append(e.flags(), "deadletters", "replay", first)...)
	r.want(t, 0, "replayed 1 pushes", "")
	rec, err := e.queue.Recover(ctx, l, queue.RecoverOptions{Deadline: time.Minute, Max: 10})
	if err != nil || len(rec) != 1 || len(rec[0].Pushes) != 1 || pushID(rec[0].Pushes[0]) != first {
		t.Fatalf("recovered after replay = %+v, %v; want push %s", rec, err, first)
	}

	r = runCLI(t, append(e.flags(), "deadletters", "replay", "-queue", "0", "-json")...)
	var rep replayJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
		t.Fatalf("replay -json: %v, %+v", err, r)
	}
	if rep.Total != 1 || len(rep.Queues) != 1 || rep.Queues[0].PushIDs[0] != third {
		t.Fatalf("replay -json = %+v, want %s", rep, third)
	}
	runCLI(t, append(e.flags(), "deadletters")...).want(t, 0, "no dead letters", "")
	runCLI(t, append(e.flags(), "deadletters", "extra")...).want(t, 2, "", "unexpected argument")
}
