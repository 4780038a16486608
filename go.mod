module github.com/tungate/tungate

go 1.26.8
