// Package human writes values the way a person reads them in an alert or
// on the status page.
package human

import (
	"strconv"
	"time"
)

// Duration writes d to the precision that matters at its size: "45s",
// "12m5s", "2h13m", "3d4h". A negative d is "0s".
func Duration(d time.Duration) string {
	const day = 24 * time.Hour
	var hi, lo time.Duration
	var hiUnit, loUnit string
	switch d = max(d, 0).Round(time.Second); {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		hi, hiUnit, lo, loUnit = time.Minute, "m", time.Second, "s"
	case d < day:
		d = d.Round(time.Minute)
		hi, hiUnit, lo, loUnit = time.Hour, "h", time.Minute, "m"
	default:
		d = d.Round(time.Hour)
		hi, hiUnit, lo, loUnit = day, "d", time.Hour, "h"
	}
	s := strconv.Itoa(int(d/hi)) + hiUnit
	if rest := (d % hi) / lo; rest > 0 {
		s += strconv.Itoa(int(rest)) + loUnit
	}
	return s
}
