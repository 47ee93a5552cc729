// Package mirrorlists will parse pacman-format mirrorlists and Arch's mirror status JSON
// for the upstream benchmark; see README.md in this folder for the country files users
// drop into /etc/amwi/mirrorlists. It is empty until the benchmark issue fills it.
package mirrorlists
