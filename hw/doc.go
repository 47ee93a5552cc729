// Package hw will read the machine for the dashboard — CPU, memory, load, disks, network,
// temperature, board model — through prometheus/procfs with injectable proc and sys roots.
//
// It is empty on purpose: the required layout reserves it, and the dashboard issue fills
// it. Nothing in amwi uses it yet.
package hw
