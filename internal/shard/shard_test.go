package shard

import (
	"fmt"
	"strings"
	"testing"
)

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Every name lands in exactly one shard of N, and the shards are not
// lopsided: the split is what lets N processes share the work.
func TestShardsAreDisjointAndCover(t *testing.T) {
	names := make([]string, 10000)
	for i := range names {
		names[i] = fmt.Sprintf("acct%04d.k%04dl%02d", i/10, i/10, i%10)
	}
	for _, n := range []int{1, 2, 3, 4, 7, 16} {
		per := make([]int, n)
		for _, name := range names {
			holders := 0
			for i := 1; i <= n; i++ {
				if (Shard{Index: i, Count: n}).Holds(name) {
					holders++
					per[i-1]++
				}
			}
			if holders != 1 {
				t.Fatalf("N=%d: %q is in %d shards, want 1", n, name, holders)
			}
		}
		for i, c := range per {
			if want := len(names) / n; c < want*8/10 || c > want*12/10 {
				t.Errorf("N=%d: shard %d holds %d of %d names, want about %d", n, i+1, c, len(names), want)
			}
		}
	}
}

// The hash is part of the contract: a connection must stay in its shard
// across releases, so this pins a few.
func TestHoldsIsStable(t *testing.T) {
	for name, want := range map[string]int{"orders": 1, "acme.a1b2c3d4e5": 3, "c-k0000l00": 4} {
		got := 0
		for i := 1; i <= 4; i++ {
			if (Shard{Index: i, Count: 4}).Holds(name) {
				got = i
			}
		}
		if got != want {
			t.Errorf("%q is in shard %d/4, want %d/4", name, got, want)
		}
	}
	if !(Shard{}).Holds("anything") || !(Shard{Index: 1, Count: 1}).Holds("x") {
		t.Error("the whole must hold every name")
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		choice  Choice
		env     func(string) (string, bool)
		want    Shard
		source  string
		wantErr string
	}{
		{"nothing", Choice{}, env(), Shard{}, "", ""},
		{"flag", Choice{Shard: "2/3"}, env(EnvShard, "1/3"), Shard{2, 3}, "--shard", ""},
		{"env", Choice{}, env(EnvShard, " 3/3 "), Shard{3, 3}, EnvShard, ""},
		{"indexed job", Choice{Shards: 4}, env(EnvJobCompletionIndex, "0"), Shard{1, 4}, EnvJobCompletionIndex, ""},
		{"batch array", Choice{Shards: 4}, env(EnvBatchArrayIndex, "3"), Shard{4, 4}, EnvBatchArrayIndex, ""},
		{"both indices agree", Choice{Shards: 2}, env(EnvBatchArrayIndex, "1", EnvJobCompletionIndex, "1"), Shard{2, 2}, EnvJobCompletionIndex, ""},
		{"shards over env", Choice{Shards: 2}, env(EnvJobCompletionIndex, "1", EnvShard, "1/5"), Shard{2, 2}, EnvJobCompletionIndex, ""},
		{"both flags", Choice{Shard: "1/2", Shards: 2}, env(), Shard{}, "", "--shard and --shards"},
		{"zero index", Choice{Shard: "0/3"}, env(), Shard{}, "", "--shard: \"0/3\": the shard must be 1 to 3, got 0"},
		{"index past count", Choice{Shard: "4/3"}, env(), Shard{}, "", "must be 1 to 3, got 4"},
		{"not a fraction", Choice{Shard: "2"}, env(), Shard{}, "", "--shard: \"2\" is not I/N"},
		{"words", Choice{Shard: "a/b"}, env(), Shard{}, "", "whole numbers"},
		{"zero count", Choice{Shard: "1/0"}, env(), Shard{}, "", "number of shards must be 1"},
		{"bad env", Choice{}, env(EnvShard, "5"), Shard{}, "", EnvShard + ": \"5\" is not I/N"},
		{"shards without index", Choice{Shards: 4}, env(), Shard{}, "", "neither is set"},
		{"index out of range", Choice{Shards: 4}, env(EnvJobCompletionIndex, "4"), Shard{}, "", "JOB_COMPLETION_INDEX=4 is outside 0 to 3"},
		{"index not a number", Choice{Shards: 4}, env(EnvBatchArrayIndex, "x"), Shard{}, "", "AWS_BATCH_JOB_ARRAY_INDEX=\"x\" is not a whole number"},
		{"indices disagree", Choice{Shards: 4}, env(EnvBatchArrayIndex, "1", EnvJobCompletionIndex, "2"), Shard{}, "", "disagree"},
		{"negative shards", Choice{Shards: -1}, env(EnvJobCompletionIndex, "0"), Shard{}, "", "--shards must be 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, source, err := Resolve(tt.choice, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || source != tt.source {
				t.Errorf("got %v from %q, want %v from %q", got, source, tt.want, tt.source)
			}
		})
	}
}

// Shards side by side must together stay within a key's limit.
func TestPerKeyShares(t *testing.T) {
	for n := 1; n <= 10; n++ {
		if got := (Shard{Index: 1, Count: n}).PerKey(10); got*n > 10 || got < 1 {
			t.Errorf("N=%d: %d slots per shard, %d together", n, got, got*n)
		}
	}
	if got := (Shard{}).PerKey(10); got != 10 {
		t.Errorf("the whole gets %d slots, want 10", got)
	}
	if got := (Shard{Index: 3, Count: 40}).PerKey(10); got != 1 {
		t.Errorf("N=40: %d slots, want 1", got)
	}
}
