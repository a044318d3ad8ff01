// Package ddftest writes DDF documents for tests.
package ddftest

import (
	"fmt"
	"strings"
)

// Doc is a valid DDF document (LWM2M.xsd) of objects 30000, 30001, ...
// with the given numbers of resources: line 1 is <LWM2M>, and each object
// takes one line, so object i starts on line i+2.
func Doc(resources ...int) string {
	var b strings.Builder
	b.WriteString("<LWM2M>\n")
	for i, n := range resources {
		fmt.Fprintf(&b, `<Object ObjectType="MODefinition"><Name>O%d</Name><Description1/><ObjectID>%d</ObjectID><ObjectURN/>`+
			`<MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Resources>`, i, 30000+i)
		for r := range n {
			fmt.Fprintf(&b, `<Item ID="%d"><Name>R</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances>`+
				`<Mandatory>Optional</Mandatory><Type>Integer</Type><RangeEnumeration/><Units/><Description/></Item>`, r)
		}
		b.WriteString("</Resources><Description2/></Object>\n")
	}
	b.WriteString("</LWM2M>\n")
	return b.String()
}
