// Package disk makes a VM's own disk from a distro cloud image.
//
// Inspect says what an image is (qcow2 or raw, its virtual size) and
// refuses what cannot be a VM's disk, with an *Error that names the file,
// what is wrong and what to do. Prepare makes the VM's disk from the image:
// a raw file (the only kind Apple's Virtualization framework takes), its
// size a multiple of 512 bytes, grown to the size asked for (DefaultSize,
// 20 GiB, by default), written to a temporary file next to the disk and
// renamed into place, so that nothing half-made is ever left behind. The
// image itself is never modified.
//
//   - qcow2 (versions 2 and 3) is converted in pure Go to a sparse raw
//     file: unallocated and zero clusters, and zero 4 KiB blocks inside data
//     clusters, stay holes. Cluster sizes from 512 B to 2 MiB, zlib
//     compressed clusters and extended L2 entries (subclusters) are read.
//     Clusters that lie together in the file are read at once (up to 512
//     KiB at a time), and inflated and written by up to 4 goroutines
//     (GOMAXPROCS): distros ship compressed images, and inflating is most
//     of the work of converting one.
//   - raw is cloned copy-on-write where the file system can (FICLONE on
//     Linux: Btrfs, XFS with reflink; clonefile on macOS: APFS), else copied
//     sparsely (SEEK_DATA/SEEK_HOLE, and zero blocks are not written).
//
// Refused, each with the command that fixes it (errors.Is with the Err
// kinds):
//
//   - ErrNotImage: an empty file; another image format (qcow version 1,
//     VMDK, VHD, VHDX, VDI, QED, Parallels, macOS .dmg); a compressed file or
//     archive (gzip, xz, zstd, bzip2, zip, tar), as distro downloads often
//     are; an ISO 9660 image (an installer, not a cloud disk); and any other
//     file without a partition table. A raw disk is recognised by its
//     partition table (an MBR boot signature or a GPT header): every cloud
//     image has one and EFI cannot boot a disk without one, and it tells a
//     raw disk from an arbitrary file.
//   - ErrTruncated: a qcow2 image whose header, L1 or L2 tables, refcount
//     table or data lie past the end of the file (an interrupted download).
//   - ErrCorrupt: inconsistent qcow2 metadata (misaligned tables, an L1
//     table too small for the disk, a cluster marked corrupt by QEMU,
//     compressed data that does not inflate to a cluster).
//   - ErrBackingFile: a qcow2 overlay whose data partly lives in another
//     file.
//   - ErrUnsupported: encryption (AES or LUKS), an external data file, zstd
//     compression, qcow2 versions other than 2 and 3, and incompatible
//     feature bits this package does not know (named from the image's
//     feature table when it has one).
//
// Inspect validates the whole qcow2 mapping before Prepare writes anything,
// so a bad image fails fast. Every table is checked against the file's
// size before it is read, so a hostile header cannot make the reader
// allocate more than the file's size or a few MiB of buffers.
//
// Why not a library: github.com/lima-vm/go-qcow2reader, which Lima uses, is
// not served by the Go module proxy this project builds with (it answers
// 403). The part of qcow2 needed to read an image without a backing file
// is small (a header, a two-level table, zlib clusters), and reading it
// here lets the converter merge contiguous clusters into large reads, skip
// zero blocks, and bound every allocation by the file's size, which the
// fuzz target checks.
package disk
