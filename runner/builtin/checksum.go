package builtin

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/taskpilot/taskpilot/runner"
)

// ChecksumParams are the params of the "checksum" task type.
type ChecksumParams struct {
	// Blocks is the number of blocks to hash.
	Blocks int `json:"blocks" jsonschema:"required,minimum=1,maximum=10000000,description=number of blocks to hash,example=600000"`
	// BlockSize is the size of a block in bytes (default 65536); it is what a run reserves
	// from the memory budget.
	BlockSize int `json:"blockSize,omitempty" jsonschema:"minimum=1,maximum=16777216,description=bytes per block (default 65536),example=65536"`
	// Seed seeds the data generator.
	Seed uint64 `json:"seed" jsonschema:"description=data generator seed,example=42"`
	// CheckpointEvery is the number of blocks between checkpoints (default 16).
	CheckpointEvery int `json:"checkpointEvery,omitempty" jsonschema:"minimum=1,description=blocks between checkpoints (default 16)"`
}

// TaskName names the type.
func (ChecksumParams) TaskName() string { return "checksum" }

// Validate checks what the JSON types cannot.
func (p ChecksumParams) Validate() error {
	switch {
	case p.Blocks <= 0 || p.Blocks > maxChecksumBlocks:
		return fmt.Errorf(`"blocks" must be between 1 and %d, got %d`, maxChecksumBlocks, p.Blocks)
	case p.BlockSize < 0 || p.BlockSize > maxChecksumBlockSize:
		return fmt.Errorf(`"blockSize" must be between 1 and %d, got %d`, maxChecksumBlockSize, p.BlockSize)
	case p.CheckpointEvery < 0:
		return fmt.Errorf(`"checkpointEvery" must be positive, got %d`, p.CheckpointEvery)
	}
	return nil
}

// checksumCheckpoint is the whole state of the chain after Next blocks.
// Seed and BlockSize are recorded so a checkpoint cannot be resumed under
// different params and silently produce a wrong digest.
type checksumCheckpoint struct {
	Next      int    `json:"next"`
	Digest    string `json:"digest"`
	Seed      uint64 `json:"seed"`
	BlockSize int    `json:"blockSize"`
}

// ChecksumResult is the result of the "checksum" task type.
type ChecksumResult struct {
	SHA256 string `json:"sha256"`
	Blocks int    `json:"blocks"`
}

const (
	maxChecksumBlocks    = 10_000_000
	maxChecksumBlockSize = 16 << 20
)

// checksumTask is a real CPU-bound job: it generates deterministic
// pseudo-random blocks and hashes them into a SHA-256 chain,
// digest_i = SHA256(digest_{i-1} || block_i), digest_-1 = 32 zero bytes.
// Block i depends only on (seed, i), and the chain state is one digest, so a
// run resumed from a checkpoint ends with exactly the digest of an
// uninterrupted run.
type checksumTask struct {
	runner.Base
	p      ChecksumParams
	blocks *blockPool
}

// blockPool keeps the block buffers of finished checksum runs for the next ones, so memory
// follows the runs that hold a buffer (what the memory budget counts) instead of the garbage
// collector's pace. A run gets a buffer of exactly its size, the size it reserved from the
// budget: a larger pooled buffer lent to it would hold memory the budget counts as free. One
// pool per registry: no package state.
type blockPool struct {
	mu     sync.Mutex
	bySize map[int]*sync.Pool
}

func (b *blockPool) of(size int) *sync.Pool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bySize == nil {
		b.bySize = map[int]*sync.Pool{}
	}
	p, ok := b.bySize[size]
	if !ok {
		p = &sync.Pool{}
		b.bySize[size] = p
	}
	return p
}

func (b *blockPool) get(size int) []byte {
	if buf, ok := b.of(size).Get().([]byte); ok {
		return buf
	}
	return make([]byte, size)
}

func (b *blockPool) put(buf []byte) {
	b.of(cap(buf)).Put(buf[:cap(buf)]) //nolint:staticcheck // a slice header per Put is fine next to a block of megabytes
}

func (b *blockPool) newChecksumTask(p ChecksumParams) (runner.Task[ChecksumResult], error) {
	if p.BlockSize == 0 {
		p.BlockSize = 64 << 10
	}
	if p.CheckpointEvery == 0 {
		p.CheckpointEvery = 16
	}
	return &checksumTask{p: p, blocks: b}, nil
}

// MemoryBytes implements Sized: a run holds one block in memory, plus its bookkeeping.
func (t *checksumTask) MemoryBytes() int64 { return int64(t.p.BlockSize) + runner.DefaultTaskMemory }

func (t *checksumTask) Run(ctx context.Context, ctl runner.Control) (ChecksumResult, error) {
	next, digest, err := t.resume(ctl)
	if err != nil {
		return ChecksumResult{}, fmt.Errorf("checksum: %w", err)
	}
	buf := t.blocks.get(t.p.BlockSize + sha256.Size)
	defer t.blocks.put(buf)
	for next < t.p.Blocks {
		ctl.SetProgress(fmt.Sprintf("%d/%d", next, t.p.Blocks))
		if err := ctl.Yield(ctx); err != nil {
			return ChecksumResult{}, err
		}
		copy(buf, digest[:])
		fillBlock(buf[sha256.Size:], t.p.Seed, next)
		digest = sha256.Sum256(buf)
		next++
		if next%t.p.CheckpointEvery == 0 && next < t.p.Blocks {
			cp := checksumCheckpoint{Next: next, Digest: hex.EncodeToString(digest[:]), Seed: t.p.Seed, BlockSize: t.p.BlockSize}
			if err := ctl.SaveCheckpoint(ctx, cp); err != nil {
				return ChecksumResult{}, fmt.Errorf("checksum: %w", err)
			}
		}
	}
	ctl.SetProgress(fmt.Sprintf("%d/%d", t.p.Blocks, t.p.Blocks))
	return ChecksumResult{SHA256: hex.EncodeToString(digest[:]), Blocks: t.p.Blocks}, nil
}

// resume returns the chain state to continue from: the checkpoint if any,
// otherwise block 0 with the zero digest.
func (t *checksumTask) resume(ctl runner.Control) (int, [sha256.Size]byte, error) {
	var digest [sha256.Size]byte
	var cp checksumCheckpoint
	found, err := ctl.LoadCheckpoint(&cp)
	if err != nil || !found {
		return 0, digest, err
	}
	if cp.Seed != t.p.Seed || cp.BlockSize != t.p.BlockSize {
		return 0, digest, errors.New("checkpoint was made with a different seed or blockSize")
	}
	if cp.Next < 0 || cp.Next > t.p.Blocks {
		return 0, digest, fmt.Errorf("checkpoint block index %d out of range", cp.Next)
	}
	raw, err := hex.DecodeString(cp.Digest)
	if err != nil || len(raw) != sha256.Size {
		return 0, digest, fmt.Errorf("checkpoint digest %q is not a hex SHA-256", cp.Digest)
	}
	copy(digest[:], raw)
	return cp.Next, digest, nil
}

// fillBlock writes block i of the stream for seed. Seeding a PCG with
// (seed, i) makes every block independently reproducible.
func fillBlock(b []byte, seed uint64, i int) {
	rng := rand.NewPCG(seed, uint64(i)) //nolint:gosec // i is a block index, never negative
	var w [8]byte
	for len(b) > 0 {
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		b = b[copy(b, w[:]):]
	}
}
