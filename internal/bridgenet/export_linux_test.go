package bridgenet

// For the tests.
var (
	ReadLeases = readLeases
	OwnerPid   = ownerPid
)
