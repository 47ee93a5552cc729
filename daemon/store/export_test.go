package store

// LockDir takes the state dir's lock as a repair does, for the tests of who waits for whom.
var LockDir = lockDir
