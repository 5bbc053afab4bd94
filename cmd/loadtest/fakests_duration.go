package main

import (
	"time"

	"github.com/iamgate/iamgate/fakests"
)

func fakestsDuration(d time.Duration) fakests.Duration { return fakests.Duration(d) }
