package mapping_test

import (
	"context"
	"fmt"
	"os"

	"github.com/iamgate/iamgate/mapping"
)

func Example() {
	doc, err := mapping.ParseDocument("example", []byte(`
mapRoles:
- rolearn: arn:aws:iam::111122223333:role/teams/dev
  username: dev:{{SessionName}}
  groups: [dev]
mapUsers:
- userarn: arn:aws:iam::111122223333:user/yaroslav
  username: yaroslav
  groups: [system:masters]
`))
	if err != nil {
		panic(err)
	}
	table, err := mapping.Compile(doc)
	if err != nil {
		panic(err)
	}
	// What the daemon builds from STS's GetCallerIdentity answer.
	id, err := mapping.NewIdentity("arn:aws:sts::111122223333:assumed-role/dev/alice@example.com",
		"111122223333", "AROAEXAMPLEID:alice@example.com", "ASIAEXAMPLE")
	if err != nil {
		panic(err)
	}
	user, err := table.Render(context.Background(), &id, nil)
	fmt.Println(id.CanonicalARN, user.Username, user.Groups, err)

	mapping.Explain(table, "arn:aws:iam::444455556666:user/yaroslav").WriteText(os.Stdout)
	// Output:
	// arn:aws:iam::111122223333:role/dev dev:alice-example.com [dev] <nil>
	// input:          arn:aws:iam::444455556666:user/yaroslav
	// principal:      user
	// result:         NOT MAPPED
	// notes:
	//   - no record matches: kube-apiserver answers "You must be logged in to the server (Unauthorized)"
	// nearest records:
	//   - mapUsers[0] arn:aws:iam::111122223333:user/yaroslav (example, line 7)
	//       same user name in account 111122223333; the identity is in account 444455556666
	// sources:        example
}
