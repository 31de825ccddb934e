package cli

/*
#cgo CFLAGS: -x objective-c -fno-objc-arc
#cgo LDFLAGS: -framework Foundation
#include <stdlib.h>
#import <Foundation/Foundation.h>

// beginActivity starts a user-initiated, latency-critical activity and
// returns its token, retained (this file is built without ARC).
static void *beginActivity(const char *reason) {
	@autoreleasepool {
		NSString *r = [NSString stringWithUTF8String:reason];
		if (r == nil) {
			r = @"vmnetbar";
		}
		id<NSObject> a = [[NSProcessInfo processInfo]
			beginActivityWithOptions:(NSActivityUserInitiatedAllowingIdleSystemSleep | NSActivityLatencyCritical)
			reason:r];
		return (void *)[a retain];
	}
}

// endActivity ends the activity and releases its token.
static void endActivity(void *token) {
	@autoreleasepool {
		id<NSObject> a = (id<NSObject>)token;
		[[NSProcessInfo processInfo] endActivity:a];
		[a release];
	}
}
*/
import "C"

import (
	"sync"
	"unsafe"
)

// holdActivity tells macOS that the app does user-requested,
// latency-critical work until release is called. A menu-bar-only app is
// otherwise put in App Nap, which throttles the link's forwarding (and a
// slow reader stalls socket_vmnet for all its clients). Idle system sleep
// stays allowed. release may be called more than once.
func holdActivity(reason string) (release func()) {
	cs := C.CString(reason)
	defer C.free(unsafe.Pointer(cs))
	token := C.beginActivity(cs)
	var once sync.Once
	return func() { once.Do(func() { C.endActivity(token) }) }
}
