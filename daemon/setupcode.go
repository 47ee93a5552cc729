package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/amwi/amwi/daemon/auth"
)

// setupCodeName is the file in the state dir that keeps the first admin's setup code while
// no account exists.
const setupCodeName = "setup-code"

// setupFirstAdmin runs at Open. While no account exists, it gives the accounts service a
// setup code, prints it in the log and keeps it in the state dir, mode 0600, for the
// owner of the box (root, or the amwi user) to read; the web registration requires it. A
// restart before anyone registered keeps the code of the file, so a code copied earlier
// stays good (delete the file for a new one). The file goes when the first account
// exists, whichever way it was made.
func (d *Daemon) setupFirstAdmin() error {
	path := filepath.Join(d.Config.State.Dir, setupCodeName)
	need, err := d.auth.NeedsSetup()
	if err != nil {
		return err
	}
	if !need {
		// Made with `amwi user add` while the daemon was stopped, or the daemon stopped
		// before it could remove it.
		if err := os.Remove(path); err == nil {
			d.Log.Info("an account exists: removed the setup code", "file", path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			d.Log.Warn("an account exists, but the old setup code cannot be removed", "file", path, "err", err)
		}
		return nil
	}
	code, err := keepSetupCode(path)
	if err != nil {
		// The code is in the log all the same: registration works, the file is a
		// convenience.
		d.Log.Warn("cannot keep the setup code in the state dir; it is in this log only", "file", path, "err", err)
	}
	d.auth.SetSetupCode(code)
	d.Log.Warn("no account yet: create the administrator at /register with this one-time setup code, or run amwi user add NAME; setup code: "+code,
		"file", path)
	return nil
}

// removeSetupCode is the accounts service's OnFirstAdmin: the code is spent.
func (d *Daemon) removeSetupCode() {
	path := filepath.Join(d.Config.State.Dir, setupCodeName)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.Log.Warn("the first account exists, but the setup code cannot be removed: delete it", "file", path, "err", err)
		return
	}
	d.Log.Info("the first account exists: the setup code is spent and removed", "file", path)
}

// keepSetupCode returns the code kept in path, or makes a new one and writes it there
// (mode 0600). A file others could read, or that holds no code, is replaced. On a write
// error it still returns a new code.
func keepSetupCode(path string) (string, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 == 0 {
		if b, err := os.ReadFile(path); err == nil {
			if code, ok := auth.ParseSetupCode(string(b)); ok {
				return code, nil
			}
		}
	}
	code, err := auth.NewSetupCode()
	if err != nil {
		return "", err
	}
	return code, writePrivate(path, []byte(code+"\n"))
}

// writePrivate writes b to path as a new file readable by its owner only: whatever was
// at path goes first, and O_EXCL makes sure the file is the one created here with mode
// 0600 (the umask can only narrow it), not a file or link someone left in its place. A
// crash halfway leaves a file without a code, which the next start replaces.
func writePrivate(path string, b []byte) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
