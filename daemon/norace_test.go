//go:build !race

package daemon

// raceEnabled: the race detector allocates on its own, so allocation guards skip under it.
const raceEnabled = false
