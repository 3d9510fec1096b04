package wa

import (
	"fmt"

	"github.com/rs/zerolog"
	waLog "go.mau.fi/whatsmeow/util/log"
)

// zeroLogger routes whatsmeow's logs into zerolog with a `module` field ("whatsmeow/Socket").
type zeroLogger struct {
	base   zerolog.Logger
	log    zerolog.Logger
	module string
}

var _ waLog.Logger = zeroLogger{}

func newWALogger(log zerolog.Logger, module string) waLog.Logger {
	return zeroLogger{base: log, log: log.With().Str("module", module).Logger(), module: module}
}

func (z zeroLogger) Warnf(msg string, args ...any)  { z.log.Warn().Msg(fmt.Sprintf(msg, args...)) }
func (z zeroLogger) Errorf(msg string, args ...any) { z.log.Error().Msg(fmt.Sprintf(msg, args...)) }
func (z zeroLogger) Infof(msg string, args ...any)  { z.log.Info().Msg(fmt.Sprintf(msg, args...)) }
func (z zeroLogger) Debugf(msg string, args ...any) { z.log.Debug().Msg(fmt.Sprintf(msg, args...)) }
func (z zeroLogger) Sub(module string) waLog.Logger {
	return newWALogger(z.base, z.module+"/"+module)
}
