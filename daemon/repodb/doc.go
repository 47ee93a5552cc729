// Package repodb reads Arch Linux sync databases (core.db, extra.db, their .files twins):
// it detects the compression by magic bytes (gzip, zstd, xz, bzip2, or a plain tar),
// streams the tar, and parses every NAME-VER-REL/desc entry into a Package.
//
// It is the reader and parser, nothing more: it keeps no index, answers no search and
// watches no file — the search package builds its index from what Read returns. It does
// not verify package signatures or checksums either; %SHA256SUM% and %PGPSIG% are passed
// through as text.
//
// A database comes from an upstream mirror and is not trusted. Limits bound what one may
// cost: decompressed bytes, the size of one desc entry, the number of entries. The zstd
// window and the xz dictionary, which decoders allocate as the stream's header asks, are
// capped at maxWindow (64 MiB), so a hostile header cannot make a 512 MB board allocate
// gigabytes. Every failure is an error naming the file (and the entry and key where there
// is one), never a panic.
//
// Memory and time: the tar is streamed out of the decompressor by a small tar reader of
// its own (tar.go says why not archive/tar) and each desc is read into one reused buffer.
// The strings of a Package share one allocation, its lists one []string; PGPSig, the bulk
// of a v1 database, has its own allocation, so a caller that drops it (search does) lets
// it be collected. A 15,000-package extra.db costs three allocations per package.
package repodb
