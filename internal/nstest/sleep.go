package nstest

import "time"

// Sleep pauses briefly between bounded polls.
func Sleep() { time.Sleep(time.Millisecond) }

func sleepBriefly() { Sleep() }
