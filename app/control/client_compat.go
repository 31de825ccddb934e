package control

import (
	"context"

	"github.com/vmnetbar/vmnetbar/app/model"
)

// Status returns the only VM's status (or a standalone link's, without a
// VM) as a model.Status.
//
// Deprecated: use Overview or VM. Only tests from before several VMs use
// it; it goes once they do not.
func (c *Client) Status(ctx context.Context) (model.Status, error) {
	v, err := c.VM(ctx, "")
	if err != nil {
		return model.Status{}, err
	}
	st := v.Status()
	if IsStandaloneLink(v) {
		st.VM = nil
	}
	return st, nil
}
