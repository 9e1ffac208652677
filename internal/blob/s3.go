package blob

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says where an S3 blob store is.
type S3Config struct {
	Bucket string
	// Endpoint is http://HOST:PORT or https://HOST[:PORT]; empty means
	// AWS (https://s3.amazonaws.com).
	Endpoint string
	Region   string
	// PathStyle addresses the bucket as a path (http://host/bucket/key),
	// as most self-hosted servers want, instead of a host name.
	PathStyle bool
	// Prefix is put before every key (e.g. "tern/"), so one bucket can
	// hold other things too.
	Prefix string
	// AccessKey, SecretKey and SessionToken are the credentials.
	AccessKey, SecretKey, SessionToken string
	// Timeout is how long a request may wait for the store: to connect,
	// for the response's headers once the request is sent, and for each
	// read or write on the connection (a body that stops coming). Zero means
	// DefaultS3Timeout. A store that does not answer then fails the
	// request rather than holding an IMAP command for ever.
	Timeout time.Duration
	// Attempts is how many times a request is sent before its error is
	// returned; zero means s3Attempts.
	Attempts int
}

// DefaultS3Timeout is S3Config.Timeout's default.
const DefaultS3Timeout = 30 * time.Second

// ParseS3URL reads s3://BUCKET?endpoint=...&region=...&path_style=true
// (&prefix=...&timeout=30s&attempts=5), with the credentials from AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
func ParseS3URL(spec string) (S3Config, error) {
	u, err := url.Parse(spec)
	if err != nil {
		return S3Config{}, fmt.Errorf("s3 blob store: %w", err)
	}
	if u.Scheme != "s3" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return S3Config{}, fmt.Errorf("s3 blob store %q: want s3://BUCKET?endpoint=...", spec)
	}
	q := u.Query()
	cfg := S3Config{
		Bucket:       u.Host,
		Endpoint:     q.Get("endpoint"),
		Region:       q.Get("region"),
		Prefix:       q.Get("prefix"),
		AccessKey:    os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey:    os.Getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken: os.Getenv("AWS_SESSION_TOKEN"),
	}
	if as := q.Get("attempts"); as != "" {
		if cfg.Attempts, err = strconv.Atoi(as); err != nil || cfg.Attempts < 1 {
			return S3Config{}, fmt.Errorf("s3 blob store: attempts=%q: want a number from 1", as)
		}
	}
	if ts := q.Get("timeout"); ts != "" {
		if cfg.Timeout, err = time.ParseDuration(ts); err != nil || cfg.Timeout <= 0 {
			return S3Config{}, fmt.Errorf("s3 blob store: timeout=%q: want a duration such as 30s", ts)
		}
	}
	if ps := q.Get("path_style"); ps != "" {
		if cfg.PathStyle, err = strconv.ParseBool(ps); err != nil {
			return S3Config{}, fmt.Errorf("s3 blob store: path_style=%q: %w", ps, err)
		}
	}
	for k := range q {
		switch k {
		case "endpoint", "region", "prefix", "path_style", "timeout", "attempts":
		default:
			return S3Config{}, fmt.Errorf("s3 blob store: unknown parameter %q", k)
		}
	}
	return cfg, nil
}

// s3Attempts is S3Config.Attempts's default: the client waits between
// attempts (200 ms, doubling, at most 1 s, jittered), so a store that
// refuses connections fails a call within about three seconds rather
// than ten (minio's default of 10 attempts), and an IMAP command waiting
// on it gets its NO [UNAVAILABLE] while its client still waits. Batch
// work (a backup) may want more (attempts= in the URL).
const s3Attempts = 5

// S3 keeps objects in a bucket of an S3-compatible object store.
type S3 struct {
	client *minio.Client
	cfg    S3Config
}

// newS3Client makes a client for cfg's endpoint and credentials.
func newS3Client(cfg S3Config) (*minio.Client, error) {
	host, secure := "s3.amazonaws.com", true
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("s3 blob store: endpoint %q: want http://HOST:PORT or https://HOST", cfg.Endpoint)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	transport, err := s3Transport(secure, cfg.Timeout)
	if err != nil {
		return nil, fmt.Errorf("s3 blob store: %w", err)
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure:       secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		MaxRetries:   cmp.Or(cfg.Attempts, s3Attempts),
		Transport:    transport,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 blob store: %w", err)
	}
	return client, nil
}

// s3Transport is minio's default transport with timeout (or
// DefaultS3Timeout) for connecting, for the response headers and for
// each read and write of a connection (stallConn): minio's own waits 30 s
// to connect, a minute for headers and for ever for a body that stops.
func s3Transport(secure bool, timeout time.Duration) (*http.Transport, error) {
	if timeout <= 0 {
		timeout = DefaultS3Timeout
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	tr.ResponseHeaderTimeout = timeout
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return stallConn{c, timeout}, nil
	}
	return tr, nil
}

// stallConn fails a connection on which nothing moved for timeout: each
// read or write sets the deadlines anew. A write moves the read deadline
// too, since the transport reads (for the response) while it still
// sends a large request's body. An idle pooled connection's pending read
// fails after timeout as well, which closes it.
type stallConn struct {
	net.Conn
	timeout time.Duration
}

func (c stallConn) Read(p []byte) (int, error) {
	c.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(p)
}

func (c stallConn) Write(p []byte) (int, error) {
	c.SetDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}

// OpenS3 connects to the store and checks that the bucket exists.
func OpenS3(ctx context.Context, cfg S3Config) (*S3, error) {
	client, err := newS3Client(cfg)
	if err != nil {
		return nil, err
	}
	s := &S3{client: client, cfg: cfg}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	if !ok {
		return nil, fmt.Errorf("%s: no such bucket", s)
	}
	return s, nil
}

// MakeS3Bucket creates cfg's bucket; one that exists already is fine.
func MakeS3Bucket(ctx context.Context, cfg S3Config) error {
	client, err := newS3Client(cfg)
	if err != nil {
		return err
	}
	err = client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
	if err != nil {
		if ok, e := client.BucketExists(ctx, cfg.Bucket); e == nil && ok {
			return nil
		}
		return fmt.Errorf("make bucket %s: %w", cfg.Bucket, err)
	}
	return nil
}

func (s *S3) String() string {
	return fmt.Sprintf("s3://%s (endpoint %s, prefix %q)", s.cfg.Bucket, s.client.EndpointURL(), s.cfg.Prefix)
}

func (s *S3) name(key string) string { return s.cfg.Prefix + key }

// s3Failed marks an error of the S3 client as ErrUnavailable when it says
// the store could not be reached or cannot serve now: no answer at all (a
// connection refused or cut, a timeout, a body cut short) or a 5xx, 429
// or 408 answer (or one of busyCodes), after the client's own retries.
// An answer about the request (403, 404, ...), the caller's cancelled
// context and an error marked already stay as they are.
func s3Failed(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		return err
	}
	r := errorResponse(err)
	switch {
	case r.StatusCode == 0 && r.Code == "", // no answer at all
		r.StatusCode >= 500, r.StatusCode == http.StatusTooManyRequests, r.StatusCode == http.StatusRequestTimeout,
		busyCodes[r.Code]: // e.g. an error in the body of a 200 answer
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// busyCodes are S3 error codes that say the store cannot serve now.
var busyCodes = map[string]bool{"InternalError": true, "SlowDown": true, "ServiceUnavailable": true, "RequestTimeout": true}

// errorResponse is the store's answer err carries, wrapped or not
// (minio.ToErrorResponse looks at err itself only); zero if none.
func errorResponse(err error) minio.ErrorResponse {
	var r minio.ErrorResponse
	errors.As(err, &r)
	return r
}

// notFound reports whether err is the store's answer for a missing key.
func notFound(err error) bool {
	r := errorResponse(err)
	return r.Code == minio.NoSuchKey || r.StatusCode == http.StatusNotFound
}

func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	_, err := s.client.PutObject(ctx, s.cfg.Bucket, s.name(key), bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "message/rfc822"})
	if err != nil {
		return fmt.Errorf("put blob %s: %w", key, s3Failed(err))
	}
	return nil
}

// Open asks for the object's first window at once (s3object.go): its
// answer says whether the object exists and how large it is, and holds
// a small body whole, in one round trip.
func (s *S3) Open(ctx context.Context, key string) (Object, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	o, err := openS3Object(ctx, s, key)
	if notFound(err) || errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("open blob %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", key, s3Failed(err))
	}
	return o, nil
}

func (s *S3) Stat(ctx context.Context, key string) (int64, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	info, err := s.client.StatObject(ctx, s.cfg.Bucket, s.name(key), minio.StatObjectOptions{})
	if notFound(err) {
		return 0, fmt.Errorf("stat blob %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", key, s3Failed(err))
	}
	return info.Size, nil
}

func (s *S3) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.cfg.Bucket, s.name(key), minio.RemoveObjectOptions{})
	if err != nil && !notFound(err) {
		return fmt.Errorf("delete blob %s: %w", key, s3Failed(err))
	}
	return nil
}

func (s *S3) List(ctx context.Context, fn func(key string, size int64, modified time.Time) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn fails
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.cfg.Prefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("list blobs: %w", s3Failed(obj.Err))
		}
		key, ok := strings.CutPrefix(obj.Key, s.cfg.Prefix)
		if !ok || CheckKey(key) != nil {
			continue
		}
		if err := fn(key, obj.Size, obj.LastModified); err != nil {
			return err
		}
	}
	return ctx.Err()
}
