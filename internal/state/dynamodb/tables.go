package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/chimport/chimport/internal/state"
)

// tableNamePattern is DynamoDB's rule for table names.
var tableNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

// tableSpec is one of the store's tables and the key schema chimport needs:
// hash key ListId (S) in all three, and a range key.
type tableSpec struct {
	purpose   string // "history", "failures", "runs"
	name      string
	rangeKey  string // "" for none
	rangeType types.ScalarAttributeType
}

func (c Config) tables() []tableSpec {
	return []tableSpec{
		{purpose: "history", name: c.HistoryTable},
		{purpose: "failures", name: c.FailuresTable, rangeKey: attrFailureKey, rangeType: types.ScalarAttributeTypeN},
		{purpose: "runs", name: c.RunsTable, rangeKey: attrRunID, rangeType: types.ScalarAttributeTypeS},
	}
}

// keySchema describes t's keys the way errors show them, from t's spec
// (want) or from a table's description (got).
func (t tableSpec) keySchema() string {
	s := attrListID + " (hash, S)"
	if t.rangeKey != "" {
		s += fmt.Sprintf(", %s (range, %s)", t.rangeKey, t.rangeType)
	}
	return s
}

func describedKeySchema(d *types.TableDescription) string {
	attrTypes := map[string]types.ScalarAttributeType{}
	for _, a := range d.AttributeDefinitions {
		attrTypes[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	var s string
	for i, k := range d.KeySchema {
		if i > 0 {
			s += ", "
		}
		name := aws.ToString(k.AttributeName)
		kind := "hash"
		if k.KeyType == types.KeyTypeRange {
			kind = "range"
		}
		s += fmt.Sprintf("%s (%s, %s)", name, kind, attrTypes[name])
	}
	return s
}

// describe returns t's description, or an error that says to run `chimport
// init` when it is missing, or that its keys are not the ones chimport
// needs (an existing table of the same name, made for something else).
func (s *Store) describe(ctx context.Context, t tableSpec) (*types.TableDescription, error) {
	out, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &t.name})
	if err != nil {
		return nil, s.opError("open "+t.purpose+" table", "", t.name, err)
	}
	if got, want := describedKeySchema(out.Table), t.keySchema(); got != want {
		return nil, fmt.Errorf("state: dynamodb: %s table %q has the keys %s; chimport needs %s",
			t.purpose, t.name, got, want)
	}
	return out.Table, nil
}

// tableWait bounds how long Init waits for a new table to become ACTIVE
// (seconds, on DynamoDB).
const tableWait = 5 * time.Minute

// initTables creates the tables that are missing, on-demand billed (a
// sync touches each connection's items a few times an hour: provisioned
// capacity would sit idle), and waits until every table is ACTIVE.
func initTables(ctx context.Context, cfg Config) (state.InitReport, error) {
	client, cfg, err := newClient(ctx, cfg)
	if err != nil {
		return state.InitReport{}, err
	}
	s := &Store{client: client, cfg: cfg}
	var report state.InitReport
	for _, t := range cfg.tables() {
		label := "DynamoDB table " + t.name
		_, err := s.describe(ctx, t)
		if err == nil {
			report.Existing = append(report.Existing, label)
			continue
		}
		if !errors.Is(err, ErrNotInitialized) {
			return report, err
		}
		created, err := s.createTable(ctx, t)
		if err != nil {
			return report, err
		}
		if created {
			report.Created = append(report.Created, label)
		} else {
			report.Existing = append(report.Existing, label)
		}
	}
	waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = time.Second, 10*time.Second
	})
	for _, t := range cfg.tables() {
		if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: &t.name}, tableWait); err != nil {
			return report, fmt.Errorf("state: dynamodb: wait for table %q to become active: %w", t.name, err)
		}
	}
	return report, nil
}

// createTable creates t; created is false when another process created it
// first (ResourceInUseException), which is as good.
func (s *Store) createTable(ctx context.Context, t tableSpec) (created bool, err error) {
	in := &dynamodb.CreateTableInput{
		TableName:   &t.name,
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrListID), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(attrListID), KeyType: types.KeyTypeHash}},
	}
	if t.rangeKey != "" {
		in.AttributeDefinitions = append(in.AttributeDefinitions,
			types.AttributeDefinition{AttributeName: &t.rangeKey, AttributeType: t.rangeType})
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: &t.rangeKey, KeyType: types.KeyTypeRange})
	}
	_, err = s.client.CreateTable(ctx, in)
	var inUse *types.ResourceInUseException
	if errors.As(err, &inUse) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state: dynamodb: create table %q (region %s): %w", t.name, s.cfg.Region, err)
	}
	return true, nil
}
