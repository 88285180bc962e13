package graph

import (
	"container/list"
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// DefaultDocumentCacheBytes is the memory the parsed documents of
// DocumentCache may hold (as documentBytes estimates it): about a thousand
// documents the size of the playground's introspection query, many times
// the distinct documents a deployment's clients send.
const DefaultDocumentCacheBytes = 8 << 20

// DocumentCache keeps parsed and validated documents by their text, so that
// a document sent again is neither parsed nor validated again. It holds
// only documents that passed every limit and validation (the handler adds
// them once they have, see documentGate.keep; gqlgen's own Add does
// nothing), and it is bounded by the bytes the documents hold, not by their
// number: a bound by number lets a thousand large documents hold gigabytes.
type DocumentCache struct{ lru sizedLRU[*ast.QueryDocument] }

var _ graphql.Cache[*ast.QueryDocument] = (*DocumentCache)(nil)

// NewDocumentCache returns a cache holding at most maxBytes of documents.
func NewDocumentCache(maxBytes int64) *DocumentCache {
	return &DocumentCache{lru: newSizedLRU[*ast.QueryDocument](maxBytes)}
}

// Get returns the document of query, if kept.
func (c *DocumentCache) Get(_ context.Context, query string) (*ast.QueryDocument, bool) {
	return c.lru.get(query)
}

// Add does nothing: gqlgen adds every document that validates, before the
// limits that depend on the variables have run. The handler keeps a
// document itself once it has passed them all.
func (c *DocumentCache) Add(context.Context, string, *ast.QueryDocument) {}

// Len returns the number of documents kept.
func (c *DocumentCache) Len() int { return c.lru.len() }

// Bytes returns the estimated bytes the documents kept hold.
func (c *DocumentCache) Bytes() int64 { return c.lru.size() }

// persistedQueries is the store of automatic persisted queries: hash ->
// document text. Like DocumentCache, its Add does nothing: gqlgen's APQ
// extension would store every document whose hash matches, before parsing
// it; the handler keeps one only once it has passed every limit and
// validation, so that a refused document is PERSISTED_QUERY_NOT_FOUND by its
// hash.
type persistedQueries struct{ lru sizedLRU[string] }

var _ graphql.Cache[string] = (*persistedQueries)(nil)

// persistedQueriesBytes bounds the texts kept by hash.
const persistedQueriesBytes = 4 << 20

func (c *persistedQueries) Get(_ context.Context, hash string) (string, bool) { return c.lru.get(hash) }
func (c *persistedQueries) Add(context.Context, string, string)               {}

// entryOverhead is what one entry costs beyond its key and value: the list
// element, the map slot and the entry itself.
const entryOverhead = 160

// sizedLRU is a least-recently-used cache bounded by the sum of its
// entries' sizes (given by the caller when it adds one), not by their count.
type sizedLRU[T any] struct {
	mu       sync.Mutex
	maxBytes int64
	bytes    int64
	order    list.List // of *sizedEntry[T]; the front is the most recently used
	items    map[string]*list.Element
}

type sizedEntry[T any] struct {
	key   string
	value T
	size  int64
}

func newSizedLRU[T any](maxBytes int64) sizedLRU[T] {
	return sizedLRU[T]{maxBytes: maxBytes, items: map[string]*list.Element{}}
}

func (c *sizedLRU[T]) get(key string) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*sizedEntry[T]).value, true
	}
	var zero T
	return zero, false
}

// has reports whether key is kept, without making it the most recent.
func (c *sizedLRU[T]) has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[key]
	return ok
}

// add keeps value under key as size bytes (plus the key and entryOverhead),
// evicting the least recently used entries until the total fits. An entry
// larger than the whole cache is not kept.
func (c *sizedLRU[T]) add(key string, value T, size int64) {
	size += int64(len(key)) + entryOverhead
	if size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return
	}
	for c.bytes+size > c.maxBytes {
		oldest := c.order.Back()
		ent := oldest.Value.(*sizedEntry[T])
		c.order.Remove(oldest)
		delete(c.items, ent.key)
		c.bytes -= ent.size
	}
	c.items[key] = c.order.PushFront(&sizedEntry[T]{key: key, value: value, size: size})
	c.bytes += size
}

func (c *sizedLRU[T]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

func (c *sizedLRU[T]) size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
