package model

import (
	"errors"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	two := Overview{VMs: []VMStatus{{Name: "build"}, {Name: "dev"}}}
	one := Overview{VMs: []VMStatus{{Name: "dev"}}}
	for _, tc := range []struct {
		o        Overview
		name     string
		want     string
		kind     Kind
		mentions string
	}{
		{one, "", "dev", 0, ""},
		{one, "dev", "dev", 0, ""},
		{two, "build", "build", 0, ""},
		{two, "", "", KindAmbiguous, "build, dev"},
		{two, "nope", "", KindNotFound, `"nope"`},
		{Overview{}, "", "", KindAmbiguous, "no VMs are configured"},
	} {
		got, err := tc.o.Resolve(tc.name)
		if tc.kind == 0 {
			if err != nil || got.Name != tc.want {
				t.Errorf("Resolve(%q) = %q, %v; want %q", tc.name, got.Name, err, tc.want)
			}
			continue
		}
		var me *Error
		if !errors.As(err, &me) || me.Kind != tc.kind || !strings.Contains(me.Msg, tc.mentions) {
			t.Errorf("Resolve(%q) error = %v; want kind %d mentioning %s", tc.name, err, tc.kind, tc.mentions)
		}
	}
}
