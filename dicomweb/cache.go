package dicomweb

import "sync"

// jsonCache keeps the DICOM JSON of instance headers, bounded in bytes
// and evicted oldest first. Entries never go stale: a blob key names one
// received copy of an instance and its file never changes (ingest gives
// every copy its own key).
type jsonCache struct {
	mu    sync.Mutex
	max   int
	size  int
	items map[string][]byte
	order []string
}

func newJSONCache(max int) *jsonCache {
	if max <= 0 {
		return nil
	}
	return &jsonCache{max: max, items: map[string][]byte{}}
}

func (c *jsonCache) get(key string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.items[key]
	return b, ok
}

func (c *jsonCache) put(key string, b []byte) {
	if c == nil || len(b) > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; ok {
		return
	}
	for c.size+len(b) > c.max && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		c.size -= len(c.items[old])
		delete(c.items, old)
	}
	c.items[key] = b
	c.order = append(c.order, key)
	c.size += len(b)
}
