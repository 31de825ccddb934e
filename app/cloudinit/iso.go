package cloudinit

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/kdomanski/iso9660"
)

// VolumeLabel is the label by which cloud-init's NoCloud data source finds
// its seed (it also takes CIDATA).
const VolumeLabel = "cidata"

// The seed's file names, as cloud-init's NoCloud reader opens them.
const (
	MetaDataName      = "meta-data"
	UserDataName      = "user-data"
	NetworkConfigName = "network-config"
)

// ISOMode is the seed's file mode: user-data may hold the user's own
// secrets (passwords, tokens in a script), so only the user reads it.
const ISOMode os.FileMode = 0o600

// WriteISO writes the seed for s to path as an ISO 9660 image labelled
// cidata, with meta-data, user-data and network-config in its root. The
// image depends on s alone, byte for byte, so it is rewritten only when
// its content changes (changed says whether it was); a rewrite is atomic
// (a temporary file renamed over path), so a VM never sees half a seed.
// The directory of path must exist.
func WriteISO(path string, s Seed) (changed bool, err error) {
	files, err := s.Render()
	if err != nil {
		return false, err
	}
	img, err := BuildISO(files)
	if err != nil {
		return false, fmt.Errorf("making the cloud-init seed %s: %w", path, err)
	}
	if same, err := sameContent(path, img); err != nil {
		return false, fmt.Errorf("reading the cloud-init seed %s: %w", path, err)
	} else if same {
		return false, nil
	}
	if err := replaceFile(path, img, ISOMode); err != nil {
		return false, fmt.Errorf("writing the cloud-init seed %s: %w", path, err)
	}
	return true, nil
}

// sameContent: path is a regular file holding exactly want. A file that
// others may read gets ISOMode (an older seed), without being rewritten.
func sameContent(path string, want []byte) (bool, error) {
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() || fi.Size() != int64(len(want)) {
		return false, nil
	}
	got, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	if !bytes.Equal(got, want) {
		return false, nil
	}
	if fi.Mode().Perm() != ISOMode {
		if err := os.Chmod(path, ISOMode); err != nil {
			return false, err
		}
	}
	return true, nil
}

// BuildISO renders files as the seed image (see WriteISO).
//
// The file names are plain ISO 9660 identifiers ("user-data;1"), as vfkit
// writes them: Linux's isofs shows them without the ";1" version (its
// default map=normal), which is how cloud-init reads them. The dates in the
// volume descriptor are set to "not specified", so the image depends on
// files alone.
func BuildISO(files Files) ([]byte, error) {
	w, err := iso9660.NewWriter()
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Cleanup() }()
	for _, f := range []struct {
		name string
		data []byte
	}{
		{MetaDataName, files.MetaData},
		{UserDataName, files.UserData},
		{NetworkConfigName, files.NetworkConfig},
	} {
		if err := w.AddFile(bytes.NewReader(f.data), f.name); err != nil {
			return nil, fmt.Errorf("adding %s: %w", f.name, err)
		}
	}
	var b bytes.Buffer
	if err := w.WriteTo(&b, VolumeLabel); err != nil {
		return nil, err
	}
	img := b.Bytes()
	if err := clearPVDDates(img); err != nil {
		return nil, err
	}
	return img, nil
}

// ECMA-119 8.4: the primary volume descriptor is sector 16; its four dates
// (creation, modification, expiration, effective) are 17-byte fields from
// offset 813.
const (
	sectorSize    = 2048
	pvdOffset     = 16 * sectorSize
	pvdDateOffset = 813
	pvdDateLen    = 17
)

// unspecifiedDate is ECMA-119 8.4.26.1's "date and time not specified":
// sixteen '0' digits and a zero time zone offset.
var unspecifiedDate = append(bytes.Repeat([]byte{'0'}, 16), 0)

func clearPVDDates(img []byte) error {
	if len(img) < pvdOffset+sectorSize || img[pvdOffset] != 1 || string(img[pvdOffset+1:pvdOffset+6]) != "CD001" {
		return fmt.Errorf("the ISO 9660 writer made no primary volume descriptor at sector 16: %w", io.ErrUnexpectedEOF)
	}
	for i := 0; i < 4; i++ {
		copy(img[pvdOffset+pvdDateOffset+i*pvdDateLen:], unspecifiedDate)
	}
	return nil
}
