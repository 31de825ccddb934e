//go:build !unix

package cloudinit

import "os"

// owner: file ownership is not checked where there are no uids.
func owner(os.FileInfo) (uid, me int, ok bool) { return 0, 0, false }
