package main

import (
	"context"
	"errors"
	"io"
)

// dicomCmd is the DICOM SCU for operators: "imaginghub dicom echo|store".
func dicomCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("usage: imaginghub dicom echo|store … (not available in this build)")
}
