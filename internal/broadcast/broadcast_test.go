package broadcast

import "testing"

func TestLatest(t *testing.T) {
	var l Latest[int]
	a, stopA := l.Subscribe()
	b, _ := l.Subscribe()
	l.Publish(1)
	l.Publish(2) // b has not taken 1: it finds 2, not a queue
	if v := <-a; v != 2 {
		t.Errorf("a got %d, want the latest, 2", v)
	}
	if v := <-b; v != 2 {
		t.Errorf("b got %d", v)
	}
	stopA()
	if _, ok := <-a; ok {
		t.Errorf("a still open after its stop")
	}
	stopA() // twice is harmless
	l.Close()
	if _, ok := <-b; ok {
		t.Errorf("b still open after Close")
	}
	c, stopC := l.Subscribe()
	if _, ok := <-c; ok {
		t.Errorf("a subscription after Close is open")
	}
	stopC()
	l.Publish(3) // nobody left: no panic
}
