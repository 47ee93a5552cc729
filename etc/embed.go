// Package etc holds the files AMWI installs under /etc and systemd's folders: the default
// amwi.toml (also embedded in the binary, so `amwi config default` can print it), the
// systemd units, and the sysusers.d and tmpfiles.d snippets. The Go side is only the embed.
package etc

import _ "embed"

// DefaultConfig is etc/amwi.toml: the commented default configuration.
//
//go:embed amwi.toml
var DefaultConfig []byte
