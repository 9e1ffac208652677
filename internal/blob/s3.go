package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
}

// ParseS3URL reads s3://BUCKET?endpoint=...&region=...&path_style=true
// (&prefix=...), with the credentials from AWS_ACCESS_KEY_ID,
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
	if ps := q.Get("path_style"); ps != "" {
		if cfg.PathStyle, err = strconv.ParseBool(ps); err != nil {
			return S3Config{}, fmt.Errorf("s3 blob store: path_style=%q: %w", ps, err)
		}
	}
	for k := range q {
		switch k {
		case "endpoint", "region", "prefix", "path_style":
		default:
			return S3Config{}, fmt.Errorf("s3 blob store: unknown parameter %q", k)
		}
	}
	return cfg, nil
}

// s3Attempts is how many times a request is sent before its error is
// returned: the client waits between them (200 ms, doubling, at most 1 s,
// jittered), so a store that cannot be reached fails a call after about
// three seconds rather than ten (minio's default of 10 attempts), and an
// IMAP command waiting on it gets its NO [UNAVAILABLE] while its client
// still waits.
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
	client, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure:       secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		MaxRetries:   s3Attempts,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 blob store: %w", err)
	}
	return client, nil
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
// connection refused or cut, a timeout, a body cut short) or a 5xx or 429
// answer, after the client's own retries. An answer about the request
// (403, 404, ...) and the caller's cancelled context stay as they are.
func s3Failed(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	code := minio.ToErrorResponse(err).StatusCode
	if code == 0 || code >= 500 || code == http.StatusTooManyRequests {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// notFound reports whether err is the store's answer for a missing key.
func notFound(err error) bool {
	r := minio.ToErrorResponse(err)
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

// s3Object streams an object: the first read starts one GET, reads at
// other offsets ask for ranges.
type s3Object struct {
	*minio.Object
	size int64
}

func (o *s3Object) Size() int64 { return o.size }

// ReadAt marks the errors of a read that are the store's (s3Failed); the
// end of the object stays io.EOF itself.
func (o *s3Object) ReadAt(p []byte, off int64) (int, error) {
	n, err := o.Object.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = s3Failed(err)
	}
	return n, err
}

func (s *S3) Open(ctx context.Context, key string) (Object, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, s.name(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", key, s3Failed(err))
	}
	info, err := obj.Stat() // sends the GET; the body is read as needed
	if err != nil {
		obj.Close()
		if notFound(err) {
			return nil, fmt.Errorf("open blob %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("open blob %s: %w", key, s3Failed(err))
	}
	return &s3Object{Object: obj, size: info.Size}, nil
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
