package coord

import (
	"context"
	"fmt"
	"net/url"

	"github.com/imaginghub/imaginghub/coord/memcoord"
	"github.com/imaginghub/imaginghub/coord/rediscoord"
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// KeyPrefix namespaces every key in a shared backend (Redis); empty
	// means rediscoord.DefaultKeyPrefix. Ignored in-process.
	KeyPrefix string
}

// Open returns a Coordinator for rawURL (IMAGINGHUB_REDIS_URL):
//
//	""                      in-process (memcoord), for a single hub process
//	redis://[user:pass@]host:port/db[?opts], rediss://...   Redis (rediscoord)
//
// A Redis URL is pinged before Open returns, so a wrong address fails at
// start-up with ErrUnavailable rather than at the first study. Errors never
// contain the URL's password.
func Open(ctx context.Context, rawURL string, opts Options) (*Coordinator, error) {
	if rawURL == "" {
		return New(memcoord.New(memcoord.Options{})), nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// *url.Error repeats the URL verbatim, password and all.
		if uerr, ok := err.(*url.Error); ok {
			err = uerr.Err
		}
		return nil, fmt.Errorf("coord: open: invalid URL: %v: %w", err, ErrInvalid)
	}
	switch u.Scheme {
	case "redis", "rediss":
		d, err := rediscoord.OpenURL(ctx, rawURL, rediscoord.Options{KeyPrefix: opts.KeyPrefix})
		if err != nil {
			return nil, fmt.Errorf("coord: open %s: %w", u.Redacted(), err)
		}
		return New(d), nil
	default:
		return nil, fmt.Errorf("coord: open: unsupported URL scheme %q (want redis or rediss, or empty for in-process): %w", u.Scheme, ErrInvalid)
	}
}
