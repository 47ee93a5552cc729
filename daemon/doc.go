// Package daemon is the amwi program: its subcommands, its lifecycle (Open, Run, Close)
// and the wiring of the concrete parts — config, store, systemd, web — into one process.
//
// Sub-packages each own one concern and know nothing of the wiring: daemon/config reads
// amwi.toml, daemon/store is the bbolt database, daemon/systemd speaks sd_notify and takes
// activated sockets. cmd/amwi only turns signals into a context and calls Main.
package daemon
