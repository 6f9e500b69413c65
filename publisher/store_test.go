package publisher_test

import (
	"context"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/s3test"
	"github.com/beckmanconnect/bcupdate/internal/storetest"
	"github.com/beckmanconnect/bcupdate/publisher"
)

func TestDirStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) publisher.Store { return &publisher.DirStore{Dir: t.TempDir()} })
}

func s3Store(t *testing.T, srv *s3test.Server) publisher.Store {
	t.Helper()
	srv.Env(t)
	bucket := srv.Bucket(t)
	s, err := publisher.OpenS3(context.Background(), "s3://"+bucket+"/repo", publisher.S3Options{Endpoint: srv.Endpoint, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3StoreGofakes3(t *testing.T) {
	srv := s3test.Fake(t)
	storetest.Run(t, func(t *testing.T) publisher.Store { return s3Store(t, srv) })
}

func TestS3StoreVersitygw(t *testing.T) {
	srv := s3test.Versity(t)
	storetest.Run(t, func(t *testing.T) publisher.Store { return s3Store(t, srv) })
}
