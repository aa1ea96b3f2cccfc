module github.com/kraken-ops/kraken

go 1.26.0

require (
	github.com/robfig/cron/v3 v3.0.1 // indirect
	golang.org/x/image v0.47.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
