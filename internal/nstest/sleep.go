package nstest

import "time"

func sleepBriefly() { time.Sleep(time.Millisecond) }
