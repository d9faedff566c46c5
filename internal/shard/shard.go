// Package shard splits connections between the processes of one scheduled
// run: `chimport run --shard 2/4` runs the second quarter. Each connection
// belongs to exactly one shard of N, chosen by a hash of its name, so the
// shards are disjoint and together cover every connection, whatever order
// the config lists them in and whichever audiences "*" discovers.
package shard

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxCount bounds N: more shards than this is a typo, not a deployment.
const MaxCount = 10000

// The environment variables a shard can come from.
const (
	// EnvShard holds "I/N", as --shard does.
	EnvShard = "CHIMPORT_SHARD"
	// EnvJobCompletionIndex is set by Kubernetes in each pod of an Indexed
	// Job: 0 to completions-1.
	EnvJobCompletionIndex = "JOB_COMPLETION_INDEX"
	// EnvBatchArrayIndex is set by AWS Batch in each child of an array
	// job: 0 to size-1.
	EnvBatchArrayIndex = "AWS_BATCH_JOB_ARRAY_INDEX"
)

// Shard is shard Index (1-based) of Count. The zero Shard is the whole:
// it holds every connection.
type Shard struct {
	Index, Count int
}

// All reports whether s holds every connection.
func (s Shard) All() bool { return s.Count <= 1 }

// Holds reports whether the connection named name belongs to s: the first
// 8 bytes of the name's SHA-256, big-endian, modulo Count. That is stable
// across releases and machines, so a connection stays in its shard from
// run to run while N stays the same, and even at any N (FNV's low bits are
// not: names that differ only at the end bunch up at N = 16). Changing N moves connections between shards, which is
// harmless: every shard reads the one shared state store.
func (s Shard) Holds(name string) bool {
	if s.All() {
		return true
	}
	sum := sha256.Sum256([]byte(name))
	return int(binary.BigEndian.Uint64(sum[:8])%uint64(s.Count))+1 == s.Index
}

func (s Shard) String() string {
	if s.All() {
		return "1/1"
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// Parse reads "I/N", 1 <= I <= N.
func Parse(v string) (Shard, error) {
	i, n, ok := strings.Cut(strings.TrimSpace(v), "/")
	if !ok {
		return Shard{}, fmt.Errorf("%q is not I/N (e.g. 2/4: the second of four shards)", v)
	}
	index, err1 := strconv.Atoi(i)
	count, err2 := strconv.Atoi(n)
	if err1 != nil || err2 != nil {
		return Shard{}, fmt.Errorf("%q is not I/N with whole numbers (e.g. 2/4)", v)
	}
	if err := check(index, count); err != nil {
		return Shard{}, fmt.Errorf("%q: %w", v, err)
	}
	return Shard{Index: index, Count: count}, nil
}

func check(index, count int) error {
	switch {
	case count < 1 || count > MaxCount:
		return fmt.Errorf("the number of shards must be 1 to %d, got %d", MaxCount, count)
	case index < 1 || index > count:
		return fmt.Errorf("the shard must be 1 to %d, got %d", count, index)
	}
	return nil
}

// Choice is what the command line says about the shard.
type Choice struct {
	// Shard is --shard I/N; "" when not given.
	Shard string
	// Shards is --shards N, which takes the index from the environment
	// (an Indexed Job's or an array job's); 0 when not given.
	Shards int
}

// Resolve picks the shard this process runs, and says where it came from
// (for the log): --shard, else --shards N with the 0-based index that
// Kubernetes (JOB_COMPLETION_INDEX) or AWS Batch (AWS_BATCH_JOB_ARRAY_INDEX)
// sets, else CHIMPORT_SHARD, else the whole. Every error names the flag
// or variable that is wrong.
func Resolve(c Choice, lookupEnv func(string) (string, bool)) (Shard, string, error) {
	switch {
	case c.Shard != "" && c.Shards != 0:
		return Shard{}, "", errors.New("--shard and --shards: give one, not both")
	case c.Shard != "":
		s, err := Parse(c.Shard)
		if err != nil {
			return Shard{}, "", fmt.Errorf("--shard: %w", err)
		}
		return s, "--shard", nil
	case c.Shards != 0:
		return fromIndex(c.Shards, lookupEnv)
	}
	if v, ok := lookupEnv(EnvShard); ok && strings.TrimSpace(v) != "" {
		s, err := Parse(v)
		if err != nil {
			return Shard{}, "", fmt.Errorf("%s: %w", EnvShard, err)
		}
		return s, EnvShard, nil
	}
	return Shard{}, "", nil
}

// fromIndex is --shards N with the index from the environment.
func fromIndex(count int, lookupEnv func(string) (string, bool)) (Shard, string, error) {
	if count < 1 || count > MaxCount {
		return Shard{}, "", fmt.Errorf("--shards must be 1 to %d, got %d", MaxCount, count)
	}
	var found []string
	for _, name := range []string{EnvJobCompletionIndex, EnvBatchArrayIndex} {
		if v, ok := lookupEnv(name); ok && strings.TrimSpace(v) != "" {
			found = append(found, name)
		}
	}
	switch len(found) {
	case 0:
		return Shard{}, "", fmt.Errorf("--shards %d needs the shard's index from %s (a Kubernetes Indexed Job) or %s (an AWS Batch array job), and neither is set; use --shard I/N to give it by hand",
			count, EnvJobCompletionIndex, EnvBatchArrayIndex)
	case 2:
		a, _ := lookupEnv(found[0])
		b, _ := lookupEnv(found[1])
		if strings.TrimSpace(a) != strings.TrimSpace(b) {
			return Shard{}, "", fmt.Errorf("--shards %d: %s=%s and %s=%s disagree; unset one", count, found[0], a, found[1], b)
		}
	}
	name := found[0]
	v, _ := lookupEnv(name)
	index, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return Shard{}, "", fmt.Errorf("--shards %d: %s=%q is not a whole number", count, name, v)
	}
	if index < 0 || index >= count {
		return Shard{}, "", fmt.Errorf("--shards %d: %s=%d is outside 0 to %d (the index counts from 0)", count, name, index, count-1)
	}
	return Shard{Index: index + 1, Count: count}, name, nil
}

// PerKey is how many of a key's limit simultaneous Mailchimp requests one
// shard may make: limit divided by Count, at least 1. Shards run side by
// side know nothing of each other, and the audiences of one account (one
// key or token) spread over all of them, so each takes its share and
// together they stay within Mailchimp's limit, up to limit shards. Shards
// run one after another leave slots unused, which costs little with many
// accounts: a run's requests are spread over all of them.
func (s Shard) PerKey(limit int) int {
	if s.All() {
		return limit
	}
	return max(1, limit/s.Count)
}
