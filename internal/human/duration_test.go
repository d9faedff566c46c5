package human

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {-time.Second, "0s"}, {-time.Minute, "0s"}, {45 * time.Second, "45s"},
		{12*time.Minute + 5*time.Second, "12m5s"}, {12 * time.Minute, "12m"},
		{59*time.Minute + 59*time.Second + 600*time.Millisecond, "1h"},
		{2*time.Hour + 13*time.Minute, "2h13m"}, {2*time.Hour + 13*time.Minute + 40*time.Second, "2h14m"},
		{3 * time.Hour, "3h"}, {52*time.Hour + 10*time.Minute, "2d4h"}, {76 * time.Hour, "3d4h"},
		{7 * 24 * time.Hour, "7d"},
	}
	for _, tt := range tests {
		if got := Duration(tt.d); got != tt.want {
			t.Errorf("Duration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
